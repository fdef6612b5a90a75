"""A unit's MDC posts the car's position on its own (`POST /v1/units/{unit}/position`), without a read: its car-mounted
camera agent's reads without GPS take the nearest one within the freshness window; the unit's officer on shift
alone posts it, for their own agency's unit; only the latest positions are kept."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.ingest.main import create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import AGENCY, drain, post, register, results_body, rows
from tests.ingest.conftest import Officer, ingest_settings
from tests.support.apps import running

B = "MN0279999"


async def _position(officer: Officer, at: datetime, lat: float, lon: float, unit: str | None = None) -> httpx.Response:
    body = {"lat": lat, "lon": lon, "at": at.isoformat()}
    return await officer.client.post(f"/v1/units/{unit or officer.unit}/position", json=body, headers=officer.headers)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def test_a_position_posted_alone_locates_the_units_agent_reads_of_its_agency_only(
    settings: Settings, make_token: TokenFactory, tmp_path: Path, officer_factory: Any
) -> None:
    own = ingest_settings(settings, data_dir=tmp_path, ingest_agent_mdc_position_max_age_s=30.0)
    app = create_app(own, run_worker=False)  # the test imports the spool itself
    async with running(app) as client:
        make = officer_factory(client)
        car = make()
        assert (await car.start()).status_code == 201
        admin = make_token(subject="positions-admin", roles=["admin"], agency=AGENCY)
        mounted = await register(
            client, admin, name=f"car-{uuid.uuid4().hex[:6]}", kind="unit", unit=car.unit, lat=None, lon=None
        )
        fix = datetime.now(UTC) - timedelta(seconds=60)
        posted = await _position(car, fix, 45.0411, -93.2722)
        assert posted.status_code == 204, posted.text

        # Agency B's car of the same name posts a position right beside the stale capture below: B's, not A's.
        b_car = make(agency=B)
        b_car.unit = car.unit
        assert (await b_car.start()).status_code == 201
        assert (await _position(b_car, fix + timedelta(seconds=48), 44.9, -93.1)).status_code == 204
        # B's other officer, without a shift, cannot reach A's unit of that name (B's unit has B's own officer).
        stranger = make(agency=B)
        other = f"car-{uuid.uuid4().hex[:8]}"
        a_only = make()
        a_only.unit = other
        assert (await a_only.start()).status_code == 201
        refused = await _position(stranger, fix, 45.0, -93.0, unit=other)
        assert refused.status_code == 409 and "no open shift in your agency" in refused.json()["detail"]
        # A's own officer not on that shift, and the shift's officer whose training has lapsed since: 403.
        assert (await _position(make(), fix, 45.0, -93.0, unit=car.unit)).status_code == 403
        lapsed = make_token(
            subject=f"officer-{car.badge}",
            roles=["officer"],
            badge=car.badge,
            agency=AGENCY,
            trained_until=int((datetime.now(UTC) - timedelta(days=1)).timestamp()),
        )
        late = await client.post(
            f"/v1/units/{car.unit}/position",
            json={"lat": 45.0, "lon": -93.0, "at": fix.isoformat()},
            headers={"Authorization": f"Bearer {lapsed}"},
        )
        assert late.status_code == 403 and "training" in late.json()["detail"]

        near, stale = fix + timedelta(seconds=5), fix + timedelta(seconds=50)  # 5 s: fresh; 50 s: past the 30 s
        assert (await post(client, mounted["token"], results_body("POSNEAR1", _ms(near)))).status_code == 200
        assert (await post(client, mounted["token"], results_body("POSSTALE", _ms(stale)))).status_code == 200
        await drain(app)

        stored = await rows(
            own,
            "SELECT r.plate, r.lat, r.lon, a.location_source FROM ingest.reads r "
            "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE a.agent_id = :a",
            a=mounted["agent_id"],
        )
        by_plate = {r.plate: (r.lat, r.lon, r.location_source) for r in stored}
        assert by_plate == {
            "POSNEAR1": (45.0411, -93.2722, "mdc"),
            "POSSTALE": (None, None, "none"),  # A's only position is 50 s off; B's beside it is not A's car
        }
        kept = await rows(own, "SELECT agency, lat FROM ingest.unit_positions WHERE unit = :u ORDER BY lat", u=car.unit)
        assert [(k.agency, k.lat) for k in kept] == [(B, 44.9), (AGENCY, 45.0411)]


async def test_only_the_latest_positions_are_kept(settings: Settings, tmp_path: Path, officer_factory: Any) -> None:
    longer = ingest_settings(settings, data_dir=tmp_path / "a", ingest_unit_position_keep_s=600.0)
    shorter = ingest_settings(settings, data_dir=tmp_path / "b", ingest_unit_position_keep_s=60.0)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running(create_app(longer, run_worker=False)))
        second = await stack.enter_async_context(running(create_app(shorter, run_worker=False)))
        car = officer_factory(first)()
        assert (await car.start()).status_code == 201
        now = datetime.now(UTC)
        assert (await _position(car, now - timedelta(seconds=100), 45.01, -93.31)).status_code == 204
        assert (await _position(car, now - timedelta(seconds=10), 45.02, -93.32)).status_code == 204
        # Posted where positions are kept 60 s: older than that is refused, and the one 100 s old goes.
        car.client = second
        too_old = await _position(car, now - timedelta(seconds=80), 45.03, -93.33)
        assert too_old.status_code == 422 and "older than the 60 s" in too_old.json()["detail"]
        assert (await _position(car, now, 45.04, -93.34)).status_code == 204
        kept = await rows(shorter, "SELECT lat FROM ingest.unit_positions WHERE unit = :u ORDER BY at", u=car.unit)
        assert [k.lat for k in kept] == [45.02, 45.04]
        # The same time again replaces its position rather than adding one.
        assert (await _position(car, now, 45.05, -93.35)).status_code == 204
        kept = await rows(shorter, "SELECT lat FROM ingest.unit_positions WHERE unit = :u ORDER BY at", u=car.unit)
        assert [k.lat for k in kept] == [45.02, 45.05]


async def test_the_worker_forgets_positions_past_their_keep_time_with_no_further_post(
    settings: Settings, tmp_path: Path, officer_factory: Any
) -> None:
    own = ingest_settings(settings, data_dir=tmp_path, ingest_unit_position_keep_s=1.0)
    async with running(create_app(own)) as client:  # the worker runs (every 0.2 s here)
        car = officer_factory(client)()
        assert (await car.start()).status_code == 201
        assert (await _position(car, datetime.now(UTC), 45.06, -93.36)).status_code == 204
        query = "SELECT lat FROM ingest.unit_positions WHERE unit = :u"
        for _ in range(50):  # 10 s at most
            if not await rows(own, query, u=car.unit):
                break
            await asyncio.sleep(0.2)
        assert await rows(own, query, u=car.unit) == []


async def test_bad_position_bodies_are_422_naming_what_is_wrong(
    settings: Settings, tmp_path: Path, officer_factory: Any
) -> None:
    own = ingest_settings(settings, data_dir=tmp_path)
    async with running(create_app(own, run_worker=False)) as client:
        car = officer_factory(client)()
        assert (await car.start()).status_code == 201
        now = datetime.now(UTC)
        good: dict[str, Any] = {"lat": 45.0, "lon": -93.0, "at": now.isoformat()}
        cases: list[tuple[Any, str]] = [
            ({k: v for k, v in good.items() if k != "at"}, "at"),
            ({**good, "lat": 91}, "lat"),
            ({**good, "lon": "west"}, "lon"),
            ({**good, "speed": 12.0}, "speed"),  # unknown fields are refused, not ignored
            ({**good, "at": now.replace(tzinfo=None).isoformat()}, "timezone"),
            ({**good, "lat": 0, "lon": 0}, "0,0"),
            ({**good, "at": (now + timedelta(hours=1)).isoformat()}, "future"),
            ([good], "object"),
        ]
        for body, named in cases:
            resp = await client.post(f"/v1/units/{car.unit}/position", json=body, headers=car.headers)
            assert resp.status_code == 422, (body, resp.text)
            assert named in resp.text, (body, resp.text)
        not_json = await client.post(
            f"/v1/units/{car.unit}/position",
            content=b"lat=45",
            headers={**car.headers, "Content-Type": "application/json"},
        )
        assert not_json.status_code == 422, not_json.text
        bad_unit = await client.post("/v1/units/car%20one/position", json=good, headers=car.headers)
        assert bad_unit.status_code == 422 and "unit" in bad_unit.text
        assert await rows(own, "SELECT 1 FROM ingest.unit_positions WHERE unit = :u", u=car.unit) == []

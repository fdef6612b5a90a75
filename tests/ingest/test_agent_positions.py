"""Where a car-mounted agent's read was: alprd posts no GPS without a GPS device. The unit's MDC position near the
capture time stands in; with none, the read is stored without a position, flagged, and matched like any other."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import Transports, create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import AGENCY, drain, now_ms, post, register, results_body, rows
from tests.ingest.conftest import StaticTokens, ingest_settings
from tests.support.apps import running


async def test_a_car_agent_without_gps_takes_its_mdc_position_or_is_stored_flagged_and_hit(
    settings: Settings, make_token: TokenFactory, tmp_path: Path, officer_factory: Any
) -> None:
    trained = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    sup = {
        "Authorization": "Bearer "
        + make_token(subject="sup-1", roles=["supervisor"], agency=AGENCY, badge="S1", trained_until=trained)
    }
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(hotlist.router.lifespan_context(hotlist))
        hl = await stack.enter_async_context(running(hotlist))
        name = f"cars-{uuid.uuid4().hex[:6]}"
        assert (await hl.post("/v1/lists", headers=sup, json={"name": name, "owner": AGENCY})).status_code == 201
        entry = {
            "plate": "NOGPS77",
            "state": "MN",
            "case_number": "CR-2026-3001",
            "reason": "stolen from a driveway",
            "owner": "det. 3001",
            "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        }
        assert (await hl.post(f"/v1/lists/{name}/entries", headers=sup, json=entry)).status_code == 201

        own = ingest_settings(
            settings, data_dir=tmp_path, ingest_call_hotlist=True, ingest_agent_mdc_position_max_age_s=30.0
        )
        service = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))
        app = create_app(
            own, transports=Transports(hotlist=httpx.ASGITransport(app=hotlist), tokens=service), run_worker=False
        )
        client = await stack.enter_async_context(running(app))
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        officer = officer_factory(client)()
        assert (await officer.start()).status_code == 201
        mounted = await register(
            client, admin, name=f"car-{uuid.uuid4().hex[:6]}", kind="unit", unit=officer.unit, lat=None, lon=None
        )
        mdc_at = datetime.now(UTC) - timedelta(seconds=60)
        # The MDC posts a read (its position with it) 60 s ago.
        meta = officer.meta(captured_at=mdc_at.isoformat(), lat=45.0411, lon=-93.2722, plate="MDC3001")
        posted = await officer.post_read(meta)
        assert posted.status_code in (200, 201, 202), posted.text

        near = int((mdc_at + timedelta(seconds=5)).timestamp() * 1000)  # 5 s after the MDC's position: fresh
        far = int((mdc_at + timedelta(seconds=50)).timestamp() * 1000)  # 50 s after: stale, and no other position
        assert (await post(client, mounted["token"], results_body("WITHMDC1", near))).status_code == 200
        assert (await post(client, mounted["token"], results_body("NOGPS77", far))).status_code == 200
        await drain(app)

        stored = await rows(
            own,
            "SELECT r.plate, r.lat, r.lon, a.location_source, r.hits FROM ingest.reads r "
            "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE a.agent_id = :a ORDER BY r.plate",
            a=mounted["agent_id"],
        )
        by_plate = {r.plate: r for r in stored}
        assert sorted(by_plate) == ["NOGPS77", "WITHMDC1"]  # neither quarantined
        assert (by_plate["WITHMDC1"].lat, by_plate["WITHMDC1"].lon) == (45.0411, -93.2722)
        assert by_plate["WITHMDC1"].location_source == "mdc"
        flagged = by_plate["NOGPS77"]
        assert (flagged.lat, flagged.lon, flagged.location_source) == (None, None, "none")
        assert [h["entry_plate"] for h in flagged.hits] == ["NOGPS77"]
        quarantined = await rows(
            own, "SELECT reason FROM ingest.agent_quarantine WHERE agent_id = :a", a=mounted["agent_id"]
        )
        assert quarantined == []

        # The hit reaches the car's stream, its read saying it has no position.
        events = await client.get(f"/v1/units/{officer.unit}/events", headers=sup)
        assert events.status_code == 200, events.text
        hits = [e for e in events.json()["events"] if e["kind"] == "hit"]
        assert [h["payload"]["read"]["plate"] for h in hits] == ["NOGPS77"]
        assert (hits[0]["payload"]["read"]["lat"], hits[0]["payload"]["read"]["lon"]) == (None, None)
        assert now_ms() > far

"""A hit opens (its details: the read's plate, place and time) for the unit's officer and the agency's supervisors
only (13.824 subd. 7(a)); anyone else goes through a grant (POST /v1/reads/search). Ingest carries the shift's
officer on the match request, so hotlist decides without a call back per view. Two agencies: B's supervisor is told
the hit does not exist."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import Transports
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.hotlist.bca import extract, row
from tests.ingest.agents_support import drain, post, register, results_body, rows
from tests.ingest.conftest import Officer, StaticTokens, ingest_settings
from tests.integration.conftest import System, wired_settings
from tests.security.test_two_agencies import officer, person
from tests.support.apps import running

_TAG = uuid.uuid4().hex[:5].upper()
A, B = f"MNHA{_TAG}", f"MNHB{_TAG}"


async def test_a_hit_opens_for_its_units_officer_and_the_agencys_supervisors_only(
    system: System,
    bca_server,  # type: ignore[no-untyped-def]
) -> None:
    plate = f"H{_TAG}"
    bca_server.publish(extract([row(f"V{uuid.uuid4().int % 10**9:09d}", plate)]))
    await system.sync()
    car, other_car = officer(system, A, "CAR-O1"), officer(system, A, "CAR-O2")
    assert (await car.start()).status_code == 201 and (await other_car.start()).status_code == 201
    answer = await car.post_read(car.meta(plate=plate, state="MN"))
    assert answer.status_code == 200, answer.text
    (hit,) = answer.json()["hits"]
    url = f"/v1/hits/{hit['hit_id']}"

    opened = await system.hotlist.get(url, headers=car.headers)
    assert opened.status_code == 200 and opened.json()["unit"] == "CAR-O1", opened.text
    assert (await system.hotlist.get(url, headers=person(system, "supervisor", A))).status_code == 200
    refused = await system.hotlist.get(url, headers=other_car.headers)  # the agency's other officer
    assert refused.status_code == 403 and "grant" in refused.json()["detail"], refused.text
    assert (await system.hotlist.get(url, headers=person(system, "admin", A))).status_code == 403
    assert (await system.hotlist.get(url, headers=person(system, "auditor", A))).status_code == 403
    assert (await system.hotlist.get(url, headers=person(system, "supervisor", B))).status_code == 404
    assert (await system.hotlist.get(url, headers=person(system, "officer", B))).status_code == 404


def person_token(make_token: TokenFactory, role: str, agency: str = A) -> dict[str, str]:
    token = make_token(subject=f"{role}-{uuid.uuid4().hex[:6]}", roles=[role], agency=agency, badge="9",
                       trained_until=int(time.time() + 86400))  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


class _Switch(httpx.AsyncBaseTransport):
    """Hotlist behind a switch: down (connection refused) until turned on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.up = inner, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("hotlist is down", request=request)
        return await self.inner.handle_async_request(request)


async def test_a_hit_matched_later_opens_for_the_officer_logged_in_on_the_unit_at_capture(
    settings: Settings,
    make_token: TokenFactory,
    bca_server,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Matched after its answer (the worker's retry, a camera agent's import and its second pass): the hit carries the
    officer of the unit's shift at capture, so it opens for them as a hit found at read time does; not for the
    agency's other officers."""
    tag = uuid.uuid4().hex[:4].upper()
    plates = {"worker": f"W{tag}1", "import": f"I{tag}2", "second": f"S{tag}3"}
    bca_server.publish(extract([row(f"V{uuid.uuid4().int % 10**9:09d}", p) for p in plates.values()]))
    own = wired_settings(settings, bca_server)
    hotlist = hotlist_app(own)
    async with running(hotlist) as hl:
        assert (await hl.post("/v1/hotlist/sync", headers=person_token(make_token, "admin"))).status_code == 200
        switch = _Switch(httpx.ASGITransport(app=hotlist))
        tokens = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))
        ingest = ingest_app(
            ingest_settings(own, ingest_call_hotlist=True, data_dir=tmp_path),
            transports=Transports(hotlist=switch, tokens=tokens),
            run_worker=False,
        )
        async with running(ingest) as ing:
            car = Officer(ing, make_token(subject=f"officer-{tag}", roles=["officer"], badge="55", agency=A), "55",
                          unit=f"CAR-L{tag}")  # fmt: skip
            other = person_token(make_token, "officer", A)
            assert (await car.start()).status_code == 201
            agent = await register(
                ing, make_token(subject="admin-l", roles=["admin"], agency=A), name=f"cam-{tag}", kind="unit",
                unit=car.unit, lat=None, lon=None,
            )  # fmt: skip

            # Hotlist down: the car's read waits for its match, so does the agent's post imported now.
            waiting = await car.post_read(car.meta(plate=plates["worker"], state="MN"))
            assert waiting.status_code == 202 and waiting.json()["pending"] == ["match"], waiting.text
            now = int(datetime.now(UTC).timestamp() * 1000)
            assert (await post(ing, agent["token"], results_body(plates["second"], now))).status_code == 200
            await drain(ingest)
            # Hotlist back: the worker's retry, the agents' second pass, and a post matched as it is imported.
            switch.up = True
            await ingest.state.ingest_worker.run_once()
            await ingest.state.agents.importer.finish_backlog()
            assert (await post(ing, agent["token"], results_body(plates["import"], now + 5000))).status_code == 200
            await drain(ingest)

            found = await rows(
                own, "SELECT read_plate, id, officer FROM hotlist.hits WHERE read_plate = ANY(:p)",
                p=list(plates.values()),
            )  # fmt: skip
            assert sorted(r.read_plate for r in found) == sorted(plates.values()), found
            for r in found:
                assert r.officer == f"officer-{tag}", (r.read_plate, r.officer)
                opened = await hl.get(f"/v1/hits/{r.id}", headers=car.headers)
                assert opened.status_code == 200, (r.read_plate, opened.text)
                refused = await hl.get(f"/v1/hits/{r.id}", headers=other)
                assert refused.status_code == 403, (r.read_plate, refused.text)

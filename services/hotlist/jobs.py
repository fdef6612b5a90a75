"""Background work of each hotlist worker: follow the current version (poll), and the scheduled BCA sync."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from fastapi import FastAPI

from services.hotlist.sync import SyncFailed, recently_synced, sync_once

log = structlog.get_logger(__name__)


async def follow_versions(app: FastAPI) -> None:
    """Every worker polls the current version id (one indexed row) and rebuilds its index when it changes."""
    settings = app.state.settings
    while True:
        await asyncio.sleep(settings.hotlist_poll_s)
        try:
            await app.state.matcher.refresh(app.state.engine)
        except Exception as exc:  # noqa: BLE001 - the database may be down; the last snapshot keeps serving
            log.warning("hotlist_refresh_failed", error=repr(exc))


async def scheduled_sync(app: FastAPI) -> None:
    settings = app.state.settings
    engine = app.state.engine
    while True:
        try:
            # Several workers run this loop; the advisory lock and the last run's time keep it to one sync.
            if not await recently_synced(engine, settings.hotlist_sync_interval_s * 0.9):
                result = await sync_once(engine, settings, trigger="schedule")
                if result.outcome == "loaded":
                    await app.state.matcher.refresh(engine)
        except SyncFailed:
            pass  # recorded in hotlist.sync_runs and logged; the old list stays in force
        except Exception as exc:  # noqa: BLE001 - keep the schedule alive through outages
            log.warning("hotlist_sync_error", error=repr(exc))
        await asyncio.sleep(settings.hotlist_sync_interval_s)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task

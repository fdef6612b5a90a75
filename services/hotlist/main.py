"""The hotlist service: BCA hot-list sync, distribution to cars, matching and hits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from services.hotlist import jobs, metrics, retention
from services.hotlist.evidence import router as evidence_router
from services.hotlist.holds import router as holds_router
from services.hotlist.ingest_client import IngestClient
from services.hotlist.matching import Matcher
from services.hotlist.routes import match_batch_beside_the_router, router
from services.hotlist.service import Distribution, version_out
from services.hotlist.subjects import router as subjects_router
from services.hotlist.sync import sync_health
from shared.app import create_service_app
from shared.settings import Settings, get_settings
from shared.verified_tokens import CachingVerifier

log = structlog.get_logger(__name__)


async def hotlist_list(app: FastAPI) -> str | None:
    """A readiness warning (not a failure): the list is missing or older than the stale threshold."""
    v = version_out(app.state.matcher, app.state.settings)
    if v.version is None:
        return "no hot list loaded"
    if v.stale:
        return f"hot list version {v.version} is stale: last confirmed {v.age_s:.0f} s ago"
    return None


async def hotlist_sync(app: FastAPI) -> str | None:
    """A readiness warning: the last syncs failed in a row (a 404, a refused file …), or the latest file was cut off
    or far shorter than the list in force (at once: a list that would have shrunk needs a look); the old list is in
    force."""
    limit = app.state.settings.hotlist_sync_failures_degraded
    health = await sync_health(app.state.engine)
    if health.latest_outcome == "incomplete":
        return f"the latest hot-list extract was refused as incomplete ({health.latest_error})"
    if health.failures_in_row >= limit:
        return (
            f"the last {health.failures_in_row} hot-list syncs failed (latest: {health.latest_error}); "
            "the list in force is not being refreshed"
        )
    return None


async def hotlist_state(app: FastAPI) -> None:
    """Scrape-time probe: the matcher's snapshot (memory) and the last sync runs (a few rows)."""
    snapshot = app.state.matcher.snapshot
    metrics.VERSION.set(snapshot.version if snapshot else 0)
    metrics.ENTRIES.set(snapshot.entries if snapshot else 0)
    age = app.state.matcher.age_s()
    metrics.AGE.set(age if age is not None else -1)
    metrics.SYNC_INTERVAL.set(app.state.settings.hotlist_sync_interval_s)
    health = await sync_health(app.state.engine)
    metrics.SYNC_FAILURES_IN_ROW.set(health.failures_in_row)
    metrics.SYNC_INCOMPLETE.set(1 if health.latest_outcome == "incomplete" else 0)


def create_app(settings: Settings | None = None, *, ingest: IngestClient | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.matcher = Matcher()
        app.state.distribution = Distribution(alerting=settings.hotlist_alert_categories)
        app.state.ingest = ingest or IngestClient.from_settings(settings)
        # Ingest calls with one service token for minutes: verify it once, not on every match.
        app.state.verifier = CachingVerifier(app.state.verifier)
        try:
            await app.state.matcher.refresh(app.state.engine)
        except Exception as exc:  # noqa: BLE001 - start anyway; the poller loads the list when PostgreSQL is back
            log.warning("hotlist_initial_load_failed", error=repr(exc))
        tasks = [asyncio.create_task(jobs.follow_versions(app))]
        if settings.hotlist_source_url and settings.hotlist_sync_scheduled:
            tasks.append(asyncio.create_task(jobs.scheduled_sync(app)))
        if settings.retention_purge_scheduled:
            purge = retention.scheduled_purge(app.state.engine, settings, app.state.ingest.held_reads)
            tasks.append(asyncio.create_task(purge))
        try:
            yield
        finally:
            await jobs.stop(tasks)
            await app.state.ingest.close()

    return create_service_app(
        "hotlist",
        settings,
        routers=[router, holds_router, subjects_router, evidence_router],
        lifespan=lifespan,
        ready_checks=[hotlist_list, hotlist_sync],
        metric_probes=[hotlist_state],
        description="Hot-list sync from the BCA, lists for the cars, matching of reads, hits and dispositions.",
        max_body_bytes=4 * 1024 * 1024,  # entries, matches and dispositions are small JSON bodies
        beside_the_router=[match_batch_beside_the_router],
    )

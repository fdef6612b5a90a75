"""The access service: identities, tokens, access requests and grants, the audit log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
from fastapi import FastAPI

from services.access.breach_duties import breach_duties_gauge, breach_duties_overdue
from services.access.breach_routes import router as breach_router
from services.access.evidence import router as evidence_router
from services.access.identity_routes import router as identity_router
from services.access.notice_routes import router as notices_router
from services.access.public_cache import PublicReports
from services.access.quarantine import router as quarantine_router
from services.access.records_routes import router as records_router
from services.access.report_routes import router as reports_router
from services.access.reports import FiguresClient
from services.access.routes import router
from services.access.search import IngestClient
from services.access.security import KeyRing, Passwords
from services.access.throttle import LoginThrottle
from services.access.web import router as web_router
from shared.app import create_service_app
from shared.audit_seal import key_path, load_keys, publish_checkpoint
from shared.settings import Settings, get_settings

log = structlog.get_logger(__name__)


async def _checkpoint_loop(app: FastAPI, settings: Settings) -> None:
    """Seal the audit chain and publish a signed checkpoint on a schedule (the key never enters the database)."""
    keys = await asyncio.to_thread(load_keys, settings, create=True)
    while True:
        try:
            await publish_checkpoint(app.state.engine, app.state.store, keys)
        except Exception as exc:  # noqa: BLE001 - a database or store outage: the next round catches up
            log.warning("audit_checkpoint_failed", error=type(exc).__name__)
        await asyncio.sleep(settings.audit_checkpoint_interval_s)


async def _last_checkpoint(app: FastAPI, settings: Settings) -> None:
    """At shutdown: seal and publish what the last round left, so no entry waits unsealed for the next start."""
    try:
        keys = await asyncio.to_thread(load_keys, settings, create=True)
        await publish_checkpoint(app.state.engine, app.state.store, keys)
    except Exception as exc:  # noqa: BLE001 - shutting down anyway: the next start's first round seals them
        log.warning("audit_checkpoint_failed", error=type(exc).__name__, at="shutdown")


def create_app(
    settings: Settings | None = None,
    *,
    ingest_transport: httpx.AsyncBaseTransport | None = None,
    hotlist_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = KeyRing(settings)
        keys.current()  # the first run makes the signing key
        app.state.keys = keys
        app.state.passwords = Passwords(settings)
        app.state.login_throttle = LoginThrottle(settings, app.state.engine)
        app.state.public_reports = PublicReports(settings, app.state.engine)
        # Its own cache and its own count: pages, not log-of-use answers.
        app.state.transparency_pages = PublicReports(settings, app.state.engine, name="public-page")
        app.state.ingest = IngestClient(
            settings.url_of("ingest"), keys, timeout_s=settings.search_timeout_s, transport=ingest_transport
        )
        app.state.figures = FiguresClient(
            keys,
            {"ingest": settings.url_of("ingest"), "hotlist": settings.url_of("hotlist")},
            timeout_s=settings.search_timeout_s,
            transports={"ingest": ingest_transport, "hotlist": hotlist_transport},
        )
        checkpoints = (
            asyncio.create_task(_checkpoint_loop(app, settings)) if settings.audit_checkpoint_scheduled else None
        )
        try:
            yield
        finally:
            if checkpoints is not None:
                checkpoints.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checkpoints
            if checkpoints is not None or key_path(settings).is_file():
                await _last_checkpoint(app, settings)
            await app.state.ingest.close()

    return create_service_app(
        "access",
        settings,
        routers=[
            identity_router,
            router,
            reports_router,
            notices_router,
            records_router,
            breach_router,
            evidence_router,
            quarantine_router,
            web_router,
        ],
        ready_checks=[breach_duties_overdue],
        metric_probes=[breach_duties_gauge],
        lifespan=lifespan,
        description="Identities, tokens, access requests with supervisor approval, and the audit log.",
        max_body_bytes=settings.court_order_max_bytes + 1024 * 1024,  # a request with its court order, the largest
    )

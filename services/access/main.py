"""The access service: identities, tokens, access requests and grants, the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.access.notice_routes import router as notices_router
from services.access.report_routes import router as reports_router
from services.access.reports import FiguresClient
from services.access.routes import router
from services.access.search import IngestClient
from services.access.security import KeyRing, Passwords
from shared.app import create_service_app
from shared.settings import Settings, get_settings


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
        app.state.ingest = IngestClient(
            settings.url_of("ingest"), keys, timeout_s=settings.search_timeout_s, transport=ingest_transport
        )
        app.state.figures = FiguresClient(
            keys,
            {"ingest": settings.url_of("ingest"), "hotlist": settings.url_of("hotlist")},
            timeout_s=settings.search_timeout_s,
            transports={"ingest": ingest_transport, "hotlist": hotlist_transport},
        )
        try:
            yield
        finally:
            await app.state.ingest.close()

    return create_service_app(
        "access",
        settings,
        routers=[router, reports_router, notices_router],
        lifespan=lifespan,
        description="Identities, tokens, access requests with supervisor approval, and the audit log.",
        max_body_bytes=settings.court_order_max_bytes + 1024 * 1024,  # a request with its court order, the largest
    )

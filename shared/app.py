"""The app factory every service uses: lifespan (engine, store, token verifier), health routes, errors, logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.auth import CurrentPrincipal, TokenVerifier
from shared.db import create_engine, create_sessionmaker, ping
from shared.errors import API_ERRORS, error_responses, register_error_handlers
from shared.fastpath import BesideTheRouter, FastRoute
from shared.health import LoopHealth
from shared.limits import InputLimitMiddleware
from shared.logs import RequestIdMiddleware, configure_logging
from shared.metrics import CountResponses, MetricsProbe, audit_chain_head, metrics_router
from shared.revocations import RevocationList
from shared.secret_files import url_signing_secret
from shared.settings import ServiceName, Settings
from shared.storage import create_store
from shared.supervision import service_restarts

log = structlog.get_logger(__name__)


class WhoAmI(BaseModel):
    subject: str
    roles: list[str]
    agency: str | None
    badge: str | None
    expires_at: datetime | None


# A readiness check returns None when fine, or a short reason when not.
ReadyCheck = Callable[[FastAPI], Awaitable[str | None]]
ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

READY_TIMEOUT_S = 2.0


async def _check(name: str, probe: Awaitable[None]) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(probe, READY_TIMEOUT_S)
    except TimeoutError:
        return name, "timed out"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
        return name, f"{type(exc).__name__}"
    return name, None


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"], responses=error_responses(422))

    @router.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="PostgreSQL and the object store answer; `degraded` (200) with warnings when a worker keeps failing",
        response_model=None,
        responses=error_responses(503),
    )
    async def readyz(request: Request) -> JSONResponse:
        app: FastAPI = request.app
        results = await asyncio.gather(
            _check("postgres", ping(app.state.engine)),
            _check("object_store", app.state.store.ping()),
        )
        checks = {name: ("ok" if reason is None else f"down: {reason}") for name, reason in results}
        warnings = {}
        for extra in app.state.ready_checks:
            try:
                name, reason = extra.__name__, await asyncio.wait_for(extra(app), READY_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL down: reported by its own check above
                name, reason = extra.__name__, f"could not check: {type(exc).__name__}"
            if reason:
                warnings[name] = reason
        for loop in app.state.loops:
            if (reason := loop.reason()) is not None:
                warnings[loop.name] = reason
        down = [name for name, reason in results if reason is not None]
        body: dict[str, object] = {"checks": checks}
        if warnings:
            body["warnings"] = warnings
        if down:
            body["detail"] = f"not ready: {', '.join(down)} down"
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        # Degraded: it serves (200, stays in rotation), but an operator should look; `warnings` says why.
        body["status"] = "degraded" if warnings else "ready"
        return JSONResponse(body)

    @router.get(
        "/v1/whoami", tags=["auth"], summary="Who the bearer token says the caller is", responses=error_responses(401)
    )
    async def whoami(principal: CurrentPrincipal) -> WhoAmI:
        return WhoAmI(
            subject=principal.subject,
            roles=sorted(principal.roles),
            agency=principal.agency,
            badge=principal.badge,
            expires_at=principal.expires_at,
        )

    return router


def create_service_app(
    service: ServiceName,
    settings: Settings,
    *,
    routers: Sequence[APIRouter] = (),
    lifespan: ServiceLifespan | None = None,
    ready_checks: Sequence[ReadyCheck] = (),
    metric_probes: Sequence[MetricsProbe] = (),
    description: str = "",
    max_body_bytes: int | None = None,
    beside_the_router: Sequence[FastRoute] = (),
) -> FastAPI:
    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json, service=service)
        url_signing_secret(settings)  # no start without a link-signing secret (production never makes one here)
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        # Figures and reports read from the streaming standby when one is given (shared/db.py, get_read_session).
        read_engine = (
            create_engine(settings, url=settings.database_url_readonly) if settings.database_url_readonly else engine
        )
        app.state.read_engine = read_engine
        app.state.read_sessionmaker = create_sessionmaker(read_engine)
        app.state.store = create_store(settings, base_url=settings.url_of("access"))
        app.state.verifier = TokenVerifier(settings)
        app.state.revocations = RevocationList(
            engine, refresh_s=settings.revocation_refresh_s, horizon_s=settings.revocation_horizon_s
        )
        log.info("service_starting", port=settings.port_of(service), store=app.state.store.name)
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await engine.dispose()
            if read_engine is not engine:
                await read_engine.dispose()
            log.info("service_stopped")

    # /docs (Swagger UI) and /redoc from fastapi-offline's own copies under /static-offline-docs, never a CDN.
    app = FastAPIOffline(
        title=f"ALPR {service} service",
        description=description,
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.ready_checks = list(ready_checks)
    app.state.loops = []  # LoopHealth of the service's worker loops, registered by its lifespan
    app.state.metric_probes = [audit_chain_head, service_restarts, *metric_probes]
    # The largest body any route of the service takes (a route may lower it for itself): counted while it streams.
    limit = min(settings.max_request_bytes, max_body_bytes or settings.max_request_bytes)
    if beside_the_router:
        # Innermost: the limits, response counts and request id still wrap the posts it answers.
        app.add_middleware(BesideTheRouter, routes=beside_the_router)
    app.add_middleware(InputLimitMiddleware, max_body_bytes=limit)
    if settings.trusted_proxies:
        # Forwarding headers (X-Forwarded-For, -Proto) believed from these peers only; uvicorn runs with
        # --no-proxy-headers so that no one else's are.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    app.add_middleware(CountResponses, service=service)
    # Outermost: it sees the peer before the proxy headers replace it.
    app.add_middleware(RequestIdMiddleware, trusted_proxies=settings.trusted_proxies)
    register_error_handlers(app)
    app.include_router(_health_router())
    app.include_router(metrics_router())
    for router in routers:
        # One error shape, documented once for every route (a route's own `responses=` entries win).
        app.include_router(router, responses=API_ERRORS)
    return app


def watch_loop(app: FastAPI, name: str) -> LoopHealth:
    """A worker loop's health, reported by `/readyz`."""
    health = LoopHealth(name)
    app.state.loops.append(health)
    return health

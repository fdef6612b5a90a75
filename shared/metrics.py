"""Prometheus metrics: the `/metrics` route every service serves, and the figures every service shares.

Each service defines its own figures in its `metrics.py` on prometheus_client's default registry; this module serves
that registry. Labels never carry a plate, a person, a unit or a case: counts, durations and states only.

`/metrics` is for the internal network (like /healthz and /readyz): with `ALPR_METRICS_TOKEN` set it asks for
`Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: …}`), else it answers anyone who can reach
the port, so do not publish the services' ports beyond the scraper.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import Unauthorized

log = structlog.get_logger(__name__)

# A probe refreshes gauges that live in the database or on disk, just before a scrape.
MetricsProbe = Callable[[FastAPI], Awaitable[None]]
PROBE_TIMEOUT_S = 2.0

RESPONSES = Counter(
    "alpr_http_responses_total",
    "HTTP answers by service and status code (503: a dependency down or a queue full; retry later)",
    ["service", "status"],
)
AUDIT_HEAD_SEQ = Gauge("alpr_audit_chain_head_seq", "Sequence number of the newest audit-log entry (the chain head)")
AUDIT_HEAD_TIME = Gauge(
    "alpr_audit_chain_head_timestamp_seconds", "When the newest audit-log entry was written (Unix time)"
)
PROBE_FAILURES = Counter(
    "alpr_metrics_probe_failures_total", "Scrape-time probes that failed (database down, timeout)", ["service", "probe"]
)


async def audit_chain_head(app: FastAPI) -> None:
    async with app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT seq, extract(epoch FROM at) AS at FROM audit.audit_log WHERE seq IS NOT NULL "
                    "ORDER BY seq DESC LIMIT 1"
                )
            )
        ).first()
    AUDIT_HEAD_SEQ.set(row.seq if row else 0)
    AUDIT_HEAD_TIME.set(float(row.at) if row else 0)


class CountResponses:
    """Counts every answer by status code (a pure ASGI middleware: streams pass through untouched)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                RESPONSES.labels(self.service, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        summary="Prometheus metrics (internal network; a bearer token when ALPR_METRICS_TOKEN is set)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(request: Request) -> Response:
        app: FastAPI = request.app
        token = app.state.settings.metrics_token
        if token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise Unauthorized("metrics need the bearer token set in ALPR_METRICS_TOKEN")
        for probe in app.state.metric_probes:
            try:
                await asyncio.wait_for(probe(app), PROBE_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - a scrape still answers; the figure keeps its last value
                PROBE_FAILURES.labels(app.state.service, probe.__name__).inc()
                log.warning("metrics_probe_failed", probe=probe.__name__, error=repr(exc))
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router

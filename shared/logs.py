"""JSON structured logs, with a request id that follows a read from service to service."""

from __future__ import annotations

import ipaddress
import logging
import sys
import uuid
from collections.abc import Sequence
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# What the audit may state as fact: the id a trusted proxy sent, or our own; a caller's unvouched id is a claim.
audit_request_id_var: ContextVar[tuple[str | None, str | None]] = ContextVar("audit_request_id", default=(None, None))


def configure_logging(level: str = "INFO", *, json: bool = True, service: str | None = None) -> None:
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def current_request_id() -> str | None:
    return request_id_var.get()


def audit_request_id() -> tuple[str | None, str | None]:
    """(the request id an audit entry may state, the id the caller claimed when not vouched for by a proxy)."""
    rid, claimed = audit_request_id_var.get()
    return (rid or request_id_var.get()), claimed


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID (or makes one), binds it to every log line, and echoes it back.

    Only a trusted proxy's id (ALPR_TRUSTED_PROXIES) is written into audit entries as the request id; anyone
    else's is kept there as `details.claimed_request_id` beside an id of our own."""

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[str] = ()) -> None:
        self.app = app
        # The caller's id is believed only from a trusted proxy: it lands in audit entries as a fact.
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _trusted_peer(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        own = uuid.uuid4().hex
        # Accept only a sane id from outside: it lands in logs (and follows the read to our other services).
        rid = incoming if incoming and len(incoming) <= 128 and incoming.isprintable() else own
        trusted = rid == own or self._trusted_peer(scope)
        audit_token = audit_request_id_var.set((rid, None) if trusted else (own, rid))
        token = request_id_var.set(rid)
        structlog.contextvars.bind_contextvars(request_id=rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)
            audit_request_id_var.reset(audit_token)

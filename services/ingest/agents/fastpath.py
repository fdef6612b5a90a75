"""Agents' posts answered next to the router: the same checks and answers as the routes in `routes.py`, without
FastAPI's routing, dependency solving and per-route middlewares (issue 18: a camera-agent post cost ~0.7 ms of CPU,
most of it the framework around a token lookup and a spool append).

It sits innermost among the app's middlewares, so the request id, the response counts, the input limits and the
server-error handler still wrap every post; errors are answered by the app's own exception handlers, so a refused
post looks exactly as it does from the route. The routes stay: they document the endpoint in the OpenAPI schema and
answer wherever this middleware is not installed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.ingest.agents.intake import AgentIntake
from services.ingest.agents.routes import accept
from shared.errors import Unavailable
from shared.limits import read_scope_body

PREFIX = "/v1/agents/openalpr"
_HEADERS = [(b"content-type", b"application/json")]


def _route_path(scope: Scope) -> str:
    # As the router sees it: without the root path a proxy mounts the service under.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _token(path: str, scope: Scope) -> tuple[bool, str | None]:
    """Whether the request is one of the agents' posts, and the token its URL carries."""
    rest = path[len(PREFIX) :]
    if rest == "":
        # `?token=`: the last one wins, as in the route's query parameter.
        query = scope.get("query_string", b"").decode("latin-1")
        found = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "token"] if query else []
        return True, found[-1] if found else None
    if rest[0] == "/" and len(rest) > 1 and "/" not in rest[1:]:
        return True, rest[1:]
    return False, None  # not ours (a trailing slash...): the router answers it as before


class AgentPostFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not (path := _route_path(scope)).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        ours, token = _token(path, scope)
        if not ours:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        try:
            intake: AgentIntake | None = getattr(app.state, "agents", None)
            if intake is None:
                raise Unavailable("ingest is starting")
            record_id = await accept(intake, token, lambda limit: read_scope_body(scope, receive, limit))
        except Exception as exc:
            handler = _handler(app.exception_handlers, exc)
            if handler is None:
                raise  # the server-error middleware's 500, as from a route
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        body = b'{"accepted":true,"id":"%s"}' % str(record_id).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _handler(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The handler Starlette's ExceptionMiddleware would pick (by class, nearest first); not the catch-all one,
    which belongs to the server-error middleware outside."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None

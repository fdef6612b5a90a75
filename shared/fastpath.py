"""The hottest posts answered beside FastAPI's router (issue 18): ingest's reads and agents' posts, hotlist's batch
match. At a thousand reads a second on two cores, the router's matching, dependency solving and per-route wrappers
cost ingest about a fifth of its CPU per read (four alternating wrk runs: 0.80 against 1.03 ms per metadata read).
A service lists them with `create_service_app(beside_the_router=...)`. A post listed here is answered by a handler that
calls the same dependencies and the same logic as its route; the route stays, for the OpenAPI schema and wherever
this middleware is not installed.

It sits innermost among the app's middlewares, so the request id, the response counts, the input limits and the
server-error handler still wrap every request; errors are answered by the app's own exception handlers, so a refused
request looks exactly as it does from the route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
# A route beside the router: the scope's handler, or None when the request is not one of its own.
FastRoute = Callable[[Scope], Handler | None]


def route_path(scope: Scope) -> str:
    """The path as the router sees it: without the root path a proxy mounts the service under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class BesideTheRouter:
    def __init__(self, app: ASGIApp, routes: Sequence[FastRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = None
        if scope["type"] == "http":
            for route in self.routes:
                if (handler := route(scope)) is not None:
                    break
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            answer = exception_handler(scope["app"].exception_handlers, exc)
            if answer is None:
                raise  # the server-error middleware's 500, as from a route
            response = await answer(request, exc)
        await response(scope, receive, send)


def exception_handler(handlers: dict[Any, Any], exc: Exception) -> Any:
    """The handler Starlette's ExceptionMiddleware would pick (by class, nearest first); not the catch-all one,
    which belongs to the server-error middleware outside."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None

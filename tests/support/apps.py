"""Run a service app in-process (lifespan included) behind an httpx client, the way a client would call it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        # Like a real server: an unhandled error is a 500 answer, not an exception in the client.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


class _RouteRemoved:
    """An app's router that answers 404 to one method and path, so that only what sits before the router (a route
    answered beside it, `shared.fastpath`) can answer them. FastAPI keeps included routers whole (shared by every
    app made from them), so a route cannot be taken out of one app's list."""

    def __init__(self, router: Any, method: str, path: str) -> None:
        self._router, self._method, self._path = router, method, path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._router, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == self._method and scope["path"] == self._path:
            await JSONResponse({"detail": "route removed by the test"}, status_code=404)(scope, receive, send)
            return
        await self._router(scope, receive, send)


def without_route(app: FastAPI, method: str, path: str) -> FastAPI:
    app.router = _RouteRemoved(app.router, method, path)  # type: ignore[assignment]
    return app

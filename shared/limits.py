"""Bounds every request meets before a route sees it, in one ASGI middleware on every app:

- the body is counted while it streams: past the limit the request is refused (413) without buffering the rest,
  whether or not a Content-Length was sent (a chunked body has none). A route may lower the limit for itself
  (`lower_body_limit`) before it reads the body;
- control characters in the path or the query string are refused (422) before any parameter is parsed.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.text import has_control

_SCOPE_KEY = "alpr.body_limit"


def lower_body_limit(request: Request, limit: int) -> None:
    """This route takes at most `limit` bytes of body (checked while it streams, and on Content-Length now)."""
    lower_scope_limit(request.scope, limit)


def lower_scope_limit(scope: Scope, limit: int) -> None:
    """`lower_body_limit` for plain ASGI code (no Request)."""
    current = scope.get(_SCOPE_KEY)
    scope[_SCOPE_KEY] = limit if current is None else min(limit, current)
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise HTTPException(413, f"body of {int(value)} bytes is over the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit`: never more than `limit` bytes held."""
    lower_body_limit(request, limit)
    chunks: list[bytes] = []
    async for chunk in request.stream():
        chunks.append(chunk)
    return b"".join(chunks)


async def read_scope_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """`read_body` for plain ASGI code: counted here too, so it holds wherever it sits among the middlewares."""
    lower_scope_limit(scope, limit)
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise HTTPException(413, f"body over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InputLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote_to_bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
        if has_control(scope.get("path", "")) or has_control(query):
            await _answer(send, 422, "control characters (NUL and the like) are not allowed in the path or query")
            return
        scope[_SCOPE_KEY] = self.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                await _answer(send, 413, f"body of {int(value)} bytes is over the limit of {self.max_body_bytes}")
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                limit = scope[_SCOPE_KEY]
                if received > limit:
                    raise HTTPException(413, f"body over the limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)

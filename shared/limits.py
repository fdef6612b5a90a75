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
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.text import has_control

_SCOPE_KEY = "alpr.body_limit"


def lower_body_limit(request: Request, limit: int) -> None:
    """This route takes at most `limit` bytes of body (checked while it streams, and on Content-Length now)."""
    current = request.scope.get(_SCOPE_KEY)
    request.scope[_SCOPE_KEY] = limit if current is None else min(limit, current)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"body of {int(length)} bytes is over the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit`: never more than `limit` bytes held."""
    lower_body_limit(request, limit)
    chunks: list[bytes] = []
    async for chunk in request.stream():
        chunks.append(chunk)
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

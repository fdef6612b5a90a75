"""What ingest's JSON calls to another service put on the wire (they go to the client's transport straight, past
its auth, redirect and cookie layers: issue 31): the token, the request id, the client's headers and timeout, the
base URL's path, and the body `client.post(json=...)` would send."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from services.ingest.clients import CallFailed, HotlistClient
from shared.logs import request_id_var


class _Tokens:
    async def headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer service-token"}

    def invalidate(self) -> None:
        pass


class _Recorder(httpx.AsyncBaseTransport):
    """The other end of the wire: records each request as it arrives and answers `status` with `answer`."""

    def __init__(self, status: int = 200, answer: dict[str, Any] | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self.status = status
        self.answer = answer if answer is not None else {"listed": True}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.seen.append(request)
        return httpx.Response(self.status, json=self.answer)


async def test_a_json_call_carries_the_token_the_request_id_and_the_body() -> None:
    wire = _Recorder()
    client = HotlistClient("http://hotlist:8000/prefix", timeout_s=7, tokens=_Tokens(), transport=wire)
    token = request_id_var.set("car-17-read-42")
    try:
        assert await client.plate_listed("ÅBC123", agency="MN0271200") is True
    finally:
        request_id_var.reset(token)
        await client.close()
    (sent,) = wire.seen
    assert sent.method == "POST"
    assert str(sent.url) == "http://hotlist:8000/prefix/v1/internal/plates/listed"
    assert sent.headers["authorization"] == "Bearer service-token"
    assert sent.headers["x-request-id"] == "car-17-read-42"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("python-httpx/")
    assert sent.headers["content-length"] == str(len(sent.content))
    assert json.loads(sent.content) == {"plate": "ÅBC123", "agency": "MN0271200"}
    assert sent.extensions["timeout"] == httpx.Timeout(7).as_dict()


async def test_a_call_outside_a_request_sends_no_request_id_and_a_refusal_is_a_call_failed() -> None:
    wire = _Recorder(status=422, answer={"detail": "bad plate"})
    client = HotlistClient("http://hotlist", timeout_s=5, tokens=_Tokens(), transport=wire)
    try:
        with pytest.raises(CallFailed) as failed:
            await client.match_many([{"read_id": "r-1", "plate": "X" * 40}])
    finally:
        await client.close()
    assert failed.value.refused and failed.value.status == 422
    assert "x-request-id" not in wire.seen[0].headers

"""httpx clients for calls between services: the request id travels with every call."""

from __future__ import annotations

import httpx

from shared.logs import REQUEST_ID_HEADER, current_request_id


async def _add_request_id(request: httpx.Request) -> None:
    rid = current_request_id()
    if rid and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = rid


def service_client(
    base_url: str,
    *,
    timeout_s: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """A client for another service of ours (or the BCA): bounded time, request id forwarded."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        transport=transport,
        headers=headers,
        event_hooks={"request": [_add_request_id]},
    )

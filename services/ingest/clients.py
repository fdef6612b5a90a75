"""httpx clients for recognition and hotlist (docs/contracts.md). Timeouts are settings; transports are injectable
so tests point ingest at in-process apps. A failure is a `CallFailed`: the read is stored with its work pending."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Protocol

import httpx
import structlog

from shared.errors import Unavailable
from shared.http import service_client

log = structlog.get_logger(__name__)


class TokenSource(Protocol):
    """What the clients need of a token provider (shared.service_auth.ServiceTokenProvider, or a test's own)."""

    async def headers(self) -> dict[str, str]: ...
    def invalidate(self) -> None: ...


class CallFailed(Exception):
    """The other service is down, slow, or refused: retry later."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the other service's HTTP status, when it answered

    @property
    def refused(self) -> bool:
        """The other service judged the request itself bad (400/422), not itself unable to answer."""
        return self.status in (400, 422)


class QueueFull(CallFailed):
    """The other service answered 503 with Retry-After: it is up, but takes no more work for that long."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Client:
    service = ""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        tokens: TokenSource | None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tokens = tokens
        self.client = service_client(base_url, timeout_s=timeout_s, transport=transport)

    async def close(self) -> None:
        await self.client.aclose()

    async def _headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        try:
            return await self.tokens.headers()
        except Unavailable as exc:
            raise CallFailed(f"no service token: {exc.detail}") from exc

    async def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await self.client.post(path, headers=await self._headers(), **kwargs)
        except httpx.HTTPError as exc:
            raise CallFailed(f"{self.service} unreachable: {type(exc).__name__}") from exc
        if resp.status_code == 401 and self.tokens is not None:
            self.tokens.invalidate()
        if resp.status_code == 503 and resp.headers.get("retry-after", "").isdigit():
            raise QueueFull(f"{self.service} answered 503", min(float(resp.headers["retry-after"]), 30.0))
        if resp.status_code != 200:
            raise CallFailed(f"{self.service} answered {resp.status_code}", resp.status_code)
        try:
            body: dict[str, Any] = resp.json()
        except ValueError as exc:
            raise CallFailed(f"{self.service} answered a body that is not JSON") from exc
        return body


class RecognitionClient(_Client):
    service = "recognition"
    _full_until = 0.0  # recognition said its queue was full: no photo is sent before this (monotonic) time

    async def recognize(self, image: bytes, content_type: str) -> list[dict[str, Any]]:
        """The plates recognition found, best first (`[]` when none). While recognition's queue is full (it answered
        503 with Retry-After) no photo is sent: the read is stored with recognition pending, and the worker sends
        it once recognition takes photos again, instead of every car's read adding to a queue that refuses it."""
        if time.monotonic() < self._full_until:
            raise CallFailed("recognition queue full")
        try:
            body = await self._post("/v1/recognize", files={"image": ("read", image, content_type)})
        except QueueFull as exc:
            self._full_until = time.monotonic() + exc.retry_after_s
            raise
        found = body.get("plates")
        if not isinstance(found, list):
            raise CallFailed("recognition answered without `plates`")
        return sorted(found, key=lambda p: -float(p.get("confidence") or 0))


def match_payload(
    *,
    read_id: str,
    plate: str,
    state: str | None,
    alternatives: list[str],
    agency: str | None,
    unit: str,
    captured_at: datetime,
    officer: str | None = None,
) -> dict[str, Any]:
    payload = {
        "read_id": read_id,
        "plate": plate,
        "state": state,
        "alternatives": alternatives,
        "agency": agency,
        "unit": unit,
        "captured_at": captured_at.isoformat(),
    }
    if officer:  # the officer of the unit's shift: the one officer a hit opens for (besides supervisors, grants)
        payload["officer"] = officer
    return payload


class HotlistClient(_Client):
    service = "hotlist"

    async def match_many(self, reads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Hotlist's answers (as `POST /v1/match` gives them) for many reads (`match_payload`s) in one call."""
        body = await self._post("/v1/match/batch", json={"reads": reads})
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(reads):
            raise CallFailed("hotlist answered without one result per read")
        for result in results:
            if not isinstance(result, dict) or not isinstance(result.get("hits"), list):
                raise CallFailed("hotlist answered without `hits`")
        return results

    async def forget_plate(self, plate: str, agency: str = "") -> dict[str, Any]:
        """Destroy the agency's hits on a Safe at Home participant's plate (but held ones): hotlist's counts."""
        return await self._post("/v1/internal/subject-requests/safe-at-home", json={"plate": plate, "agency": agency})

    async def plate_listed(self, plate: str, agency: str = "") -> bool:
        """Whether the plate is on the state list or one of the agency's lists (the two-person rule asks)."""
        return bool((await self._post("/v1/internal/plates/listed", json={"plate": plate, "agency": agency}))["listed"])

    async def version(self) -> dict[str, Any]:
        try:
            resp = await self.client.get("/v1/hotlist/version", headers=await self._headers())
        except httpx.HTTPError as exc:
            raise CallFailed(f"hotlist unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise CallFailed(f"hotlist answered {resp.status_code}")
        body: dict[str, Any] = resp.json()
        return body

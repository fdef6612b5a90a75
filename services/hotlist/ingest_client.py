"""Calls to the ingest service (docs/contracts.md): past reads for a new agency entry, and late hits for the
streams. The transport and the token source are injectable so tests can serve the contract with a small app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared.errors import Unavailable
from shared.http import service_client
from shared.service_auth import ServiceTokenProvider
from shared.settings import Settings

TokenSource = Callable[[], Awaitable[str]]


class IngestClient:
    def __init__(
        self, base_url: str, token: TokenSource | None, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self.token = token
        self.transport = transport
        self._client: httpx.AsyncClient | None = None  # one pool of connections for the app's life (`close`)

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestClient:
        provider = ServiceTokenProvider.from_settings(settings)
        return cls(settings.url_of("ingest"), provider.token if provider else None)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.token is None:
            raise Unavailable("no service credentials configured for calls to ingest")
        headers = {"Authorization": f"Bearer {await self.token()}"}
        if self._client is None:
            self._client = service_client(self.base_url, transport=self.transport)
        try:
            resp = await self._client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(f"ingest unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise Unavailable(f"ingest answered {resp.status_code} to {path}")
        data: dict[str, Any] = resp.json()
        return data

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def held_reads(self, read_ids: list[str]) -> set[str]:
        """Those of `read_ids` that a hold in ingest keeps. Raises Unavailable when ingest does not answer."""
        held: set[str] = set()
        for start in range(0, len(read_ids), 10_000):
            data = await self._post("/v1/internal/reads/held", {"read_ids": read_ids[start : start + 10_000]})
            held.update(data.get("held", []))
        return held

    async def push_hits(self, hits: list[dict[str, Any]]) -> None:
        await self._post("/v1/internal/hits", {"hits": hits})

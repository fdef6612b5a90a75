"""Tokens for calls between our services: the client-credentials grant at the access service, cached.

Each service that calls another (ingest calling recognition and hotlist; hotlist calling ingest) holds a client id
and secret (`ALPR_SERVICE_CLIENT_ID` / `ALPR_SERVICE_CLIENT_SECRET`) for a client whose token carries the
`service` role. The token is fetched once and renewed shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from shared.errors import Unavailable
from shared.http import service_client
from shared.settings import Settings

RENEW_BEFORE_S = 30


class ServiceTokenProvider:
    def __init__(
        self,
        access_url: str,
        client_id: str,
        client_secret: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.access_url = access_url
        self.client_id = client_id
        self._secret = client_secret
        self._transport = transport
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceTokenProvider | None:
        if not (settings.service_client_id and settings.service_client_secret):
            return None
        return cls(
            settings.url_of("access"),
            settings.service_client_id,
            settings.service_client_secret.get_secret_value(),
        )

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() > self._expires_at - RENEW_BEFORE_S:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Drop the cached token (after a 401 from the callee, say)."""
        self._token = None

    async def _fetch(self) -> None:
        try:
            async with service_client(self.access_url, transport=self._transport) as client:
                resp = await client.post(
                    "/v1/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self._secret,
                    },
                )
        except httpx.HTTPError as exc:
            raise Unavailable("access service unreachable for a service token") from exc
        if resp.status_code != 200:
            raise Unavailable(f"access service refused the service token ({resp.status_code})")
        body = resp.json()
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

"""The services wired together for real: ingest calling the real recognition and hotlist apps, hotlist calling the
real ingest app back (past reads, late hits), access searching the real ingest archive. In-process (ASGI
transports, every lifespan running here); the outage tests run the peers under uvicorn instead."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.hotlist.ingest_client import IngestClient
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import Transports
from services.ingest.main import create_app as ingest_app
from services.recognition.main import create_app as recognition_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.hotlist.bca import CREDENTIAL, FakeBca
from tests.ingest.conftest import AGENCY, Officer, StaticTokens, ingest_settings
from tests.support.apps import running

OWNER_AGENCY = "MN0270000"  # an agency owning a covert list; not the officers' agency


@pytest.fixture(scope="session")
def bca_server() -> Iterator[FakeBca]:
    server = FakeBca()
    server.start()
    yield server
    server.stop()


def wired_settings(settings: Settings, bca: FakeBca, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "hotlist_source_url": bca.url,
            "hotlist_source_credential": SecretStr(CREDENTIAL),
            "hotlist_source_timeout_s": 2.0,
            "hotlist_source_retries": 1,
            "hotlist_sync_scheduled": False,
            "hotlist_poll_s": 0.05,
            "recognition_max_image_bytes": 2_000_000,
            **overrides,
        }
    )


@dataclass
class System:
    settings: Settings
    ingest_app: FastAPI
    ingest: httpx.AsyncClient
    hotlist: httpx.AsyncClient
    make_token: TokenFactory
    # Builds another ingest app on the same peers (other settings, e.g. the second read).
    another_ingest: Callable[..., Awaitable[httpx.AsyncClient]]

    def auth(self, *roles: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.make_token(roles=list(roles), **claims)}"}

    def officer(self, client: httpx.AsyncClient | None = None) -> Officer:
        badge = str(uuid.uuid4().int % 1_000_000)
        token = self.make_token(
            subject=f"officer-{badge}",
            roles=["officer"],
            badge=badge,
            agency=AGENCY,
            trained_until=int(time.time() + 86400),
        )
        return Officer(client or self.ingest, token, badge, unit=f"car-{uuid.uuid4().hex[:8]}")

    async def sync(self) -> int:
        resp = await self.hotlist.post("/v1/hotlist/sync", headers=self.auth("admin"))
        assert resp.status_code == 200, resp.text
        version: int = resp.json()["version"]
        return version

    async def events(self, officer: Officer, since: int = 0) -> list[dict[str, Any]]:
        resp = await officer.client.get(
            f"/v1/units/{officer.unit}/events", params={"since": since, "limit": 500}, headers=officer.headers
        )
        assert resp.status_code == 200, resp.text
        events: list[dict[str, Any]] = resp.json()["events"]
        return events

    async def agency_events(self, agency: str, since: int = 0) -> list[dict[str, Any]]:
        resp = await self.ingest.get(
            f"/v1/agencies/{agency}/events",
            params={"since": since, "limit": 500},
            headers=self.auth("supervisor", agency=agency),
        )
        assert resp.status_code == 200, resp.text
        events: list[dict[str, Any]] = resp.json()["events"]
        return events


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0, every_s: float = 0.1) -> Any:
    """Poll until `check` returns something truthy (work done by a background worker), else fail."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: last {got!r}")
        await asyncio.sleep(every_s)


@pytest.fixture(scope="module")
async def system(settings: Settings, make_token: TokenFactory, bca_server: FakeBca) -> AsyncIterator[System]:
    """Recognition, hotlist and ingest apps, each calling the others through ASGI transports."""
    own = wired_settings(settings, bca_server)

    async def service_token() -> str:
        return make_token(subject="svc-hotlist", roles=["service"])

    back_to_ingest = IngestClient("http://ingest", service_token)  # its transport is set once ingest exists
    recognition = recognition_app(own)
    hotlist = hotlist_app(own, ingest=back_to_ingest)
    async with AsyncExitStack() as stack:
        for peer in (recognition, hotlist):
            await stack.enter_async_context(peer.router.lifespan_context(peer))
        hotlist_client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=hotlist), base_url="http://hotlist")
        )
        ingest_token = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))

        async def another_ingest(**overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
            values = {"ingest_call_recognition": True, "ingest_call_hotlist": True, **overrides}
            app = ingest_app(
                ingest_settings(own, **values),
                transports=Transports(
                    recognition=httpx.ASGITransport(app=recognition),
                    hotlist=httpx.ASGITransport(app=hotlist),
                    tokens=ingest_token,
                ),
            )
            client = await stack.enter_async_context(running(app))
            return app, client

        app, client = await another_ingest(ingest_hotlist_poll_s=0.1)
        back_to_ingest.transport = httpx.ASGITransport(app=app)

        async def more(**overrides: Any) -> httpx.AsyncClient:
            return (await another_ingest(**overrides))[1]

        yield System(own, app, client, hotlist_client, make_token, more)

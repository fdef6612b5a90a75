"""Fixtures of the ingest tests: the app on real PostgreSQL and S3, officers with tokens, images made here."""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from services.ingest.main import Transports, create_app
from shared.settings import Settings
from tests.support.apps import running

AGENCY = "MN0270100"


def dead_url() -> str:
    """A loopback URL where nothing listens: a service that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def ingest_settings(base: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "recognition_url": dead_url(),
        "hotlist_url": dead_url(),
        "ingest_call_hotlist": False,
        "ingest_call_recognition": False,
        "ingest_worker_interval_s": 0.2,
        "ingest_hotlist_poll_s": 0,
        "ingest_stream_poll_s": 0.1,
        "ingest_max_photo_bytes": 200_000,
        **overrides,
    }
    return base.model_copy(update=values)


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (320, 240), noise: int = 0) -> bytes:
    img = Image.new("RGB", size, (40, 90, 160))
    if noise:
        img = Image.effect_noise(size, noise).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=90)
    return buf.getvalue()


@dataclass
class Officer:
    client: httpx.AsyncClient
    token: str
    badge: str
    unit: str
    shift_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self, cameras: list[str] | None = None) -> httpx.Response:
        resp = await self.client.post(
            "/v1/shifts",
            json={"badge": self.badge, "unit": self.unit, "cameras": cameras or ["front"]},
            headers=self.headers,
        )
        if resp.status_code == 201:
            self.shift_id = resp.json()["shift_id"]
        return resp

    def meta(self, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "client_read_id": uuid.uuid4().hex[:16],
            "unit": self.unit,
            "camera": "front",
            "captured_at": datetime.now(UTC).isoformat(),
            "lat": 45.0322,
            "lon": -93.3602,
            "heading": 90.0,
            "speed": 12.5,
        }
        base.update(fields)
        return base

    async def post_read(
        self, meta: dict[str, Any], photo: bytes | None = None, crop: bytes | None = None
    ) -> httpx.Response:
        files: dict[str, Any] = {"metadata": (None, json.dumps(meta), "application/json")}
        if photo is not None:
            files["photo"] = ("photo.jpg", photo, "image/jpeg")
        if crop is not None:
            files["crop"] = ("crop.png", crop, "image/png")
        return await self.client.post("/v1/reads", files=files, headers=self.headers)


MakeOfficer = Callable[..., Officer]


@pytest.fixture
def officer_factory(make_token: Callable[..., str]) -> Callable[[httpx.AsyncClient], MakeOfficer]:
    def bind(client: httpx.AsyncClient) -> MakeOfficer:
        def make(*, trained_for_s: float | None = 86400.0, badge: str | None = None, **claims: Any) -> Officer:
            badge = badge or str(uuid.uuid4().int % 100000)
            extra: dict[str, Any] = {"badge": badge, "agency": AGENCY, **claims}
            extra["trained_until"] = int(time.time() + trained_for_s) if trained_for_s is not None else None
            token = make_token(subject=f"officer-{badge}", roles=["officer"], **extra)
            return Officer(client, token, badge, unit=f"car-{uuid.uuid4().hex[:8]}")

        return make

    return bind


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(ingest_settings(settings))) as client:
        yield client


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


class StaticTokens:
    """Service tokens for ingest's calls in tests: one token signed by `make_token` with the `service` role.
    Phase 2 passes it with the real apps' transports: `Transports(recognition=..., hotlist=..., tokens=...)`."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def invalidate(self) -> None:
        """A static token cannot be renewed."""


@asynccontextmanager
async def ingest_with(
    settings: Settings,
    service_token: str,
    *,
    recognition: FastAPI | None = None,
    hotlist: FastAPI | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Ingest calling the real recognition and hotlist apps in-process (their lifespans run here). Phase 2's
    happy-path tests: `async with ingest_with(settings, make_token(roles=["service"]), recognition=recognition_app(
    settings), hotlist=hotlist_app(settings)) as (app, client)`. For outages, run them under uvicorn instead and
    point `recognition_url` / `hotlist_url` at them (stop the process, start it again)."""
    async with AsyncExitStack() as stack:
        transports: dict[str, httpx.AsyncBaseTransport] = {}
        for name, peer in (("recognition", recognition), ("hotlist", hotlist)):
            if peer is not None:
                await stack.enter_async_context(peer.router.lifespan_context(peer))
                transports[name] = httpx.ASGITransport(app=peer)
        own = ingest_settings(
            settings,
            ingest_call_recognition=recognition is not None,
            ingest_call_hotlist=hotlist is not None,
            **overrides,
        )
        app = create_app(own, transports=Transports(**transports, tokens=StaticTokens(service_token)))  # type: ignore[arg-type]
        client = await stack.enter_async_context(running(app))
        yield app, client

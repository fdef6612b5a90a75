"""Token issue and verify rates of the access service (archived-search latency: bench/archive.py).

- `client_credentials_per_s`: POST /v1/token (client credentials: SHA-256 secret check, ES256 signature, one audit
  entry per token) against one uvicorn worker, closed loop.
- `password_per_s`: the password grant with production argon2id cost (64 MiB, 3 passes): bounded by design.
- `verify_per_s`: `shared.auth.TokenVerifier.verify` in-process, one core (what every service pays per request).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import closed_loop, database, serve
from services.access import identity
from services.access.security import Passwords
from shared.auth import TokenVerifier
from shared.db import create_sessionmaker
from shared.settings import Settings

PASSWORD = "bench password 2026"


async def _seed(url: str, settings: Settings) -> tuple[str, str, str]:
    engine = create_async_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            client, secret = await identity.create_client(session, name="bench", role="service")
            user = await identity.create_user(
                session, Passwords(settings), username=f"bench-{time.time_ns()}", password=PASSWORD,
                full_name="Bench Officer", agency="MN0271200", roles=["officer"],
            )  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()
    return client.client_id, secret, user.username


async def _verify_rate(settings: Settings, token: str, seconds: float) -> dict[str, Any]:
    verifier = TokenVerifier(settings)
    await verifier.verify(token)  # key loaded
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        await verifier.verify(token)
        count += 1
    elapsed = time.perf_counter() - began
    return {"verifications": count, "per_s": round(count / elapsed, 1), "us_each": round(elapsed / count * 1e6, 1)}


def run(duration_s: float = 5.0, concurrency: int = 8) -> dict[str, Any]:
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), database_url=url)
        client_id, secret, username = asyncio.run(_seed(url, settings))
        env = {"ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": data_dir}
        with serve("access", env) as base:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
            issue = asyncio.run(
                closed_loop(
                    lambda c: c.post("/v1/token", data=form),
                    base_url=base,
                    concurrency=concurrency,
                    duration_s=duration_s,
                )  # fmt: skip
            )
            login = {"grant_type": "password", "username": username, "password": PASSWORD}
            password = asyncio.run(
                closed_loop(lambda c: c.post("/v1/token", data=login), base_url=base, concurrency=2, duration_s=3.0)
            )
            token = httpx.post(f"{base}/v1/token", data=form, timeout=10).json()["access_token"]
        verify = asyncio.run(_verify_rate(settings, token, 3.0))
    return {
        "client_credentials": {"workers": 1, **issue},
        "password_argon2id_64MiB_t3": {"workers": 1, **password},
        "verify_in_process": verify,
        "archived_search_1M_reads": {"see": "the `archive_search` benchmark (bench/archive.py)"},
    }

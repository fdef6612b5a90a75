"""The read path over HTTP with a real load tool: wrk (Lua scripts in bench/lua make the POST bodies) against ingest
(2 uvicorn workers), hotlist and access as `alpr up` runs them, on PostgreSQL and a real S3 server (`weed mini`).

Per path: req/s, p50/p95/p99, errors, and the server CPU per request of each process group (ingest, hotlist,
access, PostgreSQL backends of this database, weed), read from /proc before and after the run. CPU per request is
the primary figure: wrk and other work on this shared 2-core machine take cores from the services, which lowers
req/s and raises latency, but barely changes what a request costs. The load average is reported beside it.

Environment: BENCH_WRK_SECONDS (default 15), BENCH_WRK_CONNECTIONS (48), BENCH_AGENT_SEED_READS (reads stored
before the agent run; default 1,000,000), BENCH_AGENT_RATE (agent posts/s offered; 2,000), BENCH_READ_RATE
(metadata reads/s offered by metadata_paced; 1,000), BENCH_WRK_PATHS
(comma-separated subset of the paths: healthz, metadata, metadata_paced, metadata_1conn,
photo, agents).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.harness import database, register_agents, serve
from bench.ingest import _token, photo

LUA = Path(__file__).parent / "lua"
AGENTS = 50


def ensure_wrk() -> str:
    """wrk from the Debian package; installed when missing and this user may install packages."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        # apt's progress goes to stderr: stdout carries the benchmark's JSON.
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=sys.stderr)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: run `apt-get install wrk` (Debian/Ubuntu) as root")
    return found


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_of(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


async def _pg_backends(dsn: str) -> dict[str, list[int]]:
    """This database's PostgreSQL processes: the services' connections, and autovacuum's workers apart (they run
    when a table has changed enough, so their CPU lands in whichever run they happen to overlap)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_type FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        out: dict[str, list[int]] = {"postgres": [], "postgres_autovacuum": []}
        for r in rows:
            out["postgres_autovacuum" if r["backend_type"] == "autovacuum worker" else "postgres"].append(r["pid"])
        return out
    finally:
        await conn.close()


class CpuMeter:
    """CPU seconds (user + system, from /proc) of each process group between `start` and `stop`."""

    def __init__(self, groups: dict[str, int], dsn: str) -> None:
        self.groups = groups  # name -> root pid (its children count too)
        self.dsn = dsn

    def _sample(self) -> dict[str, dict[int, float]]:
        out = {name: _cpu_of(_tree(pid)) for name, pid in self.groups.items()}
        for name, pids in asyncio.run(_pg_backends(self.dsn)).items():
            out[name] = _cpu_of([psutil.Process(p) for p in pids if psutil.pid_exists(p)])
        return out

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        used = {}
        for name, pids in after.items():
            before = self._before.get(name, {})
            used[name] = sum(t - before.get(pid, 0.0) for pid, t in pids.items())
        return used


def run_wrk(
    url: str,
    script: str,
    env: dict[str, str],
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    rate: float | None = None,
) -> dict[str, Any]:
    """wrk's summary. `rate`: requests/s offered in all (paced per thread by common.lua), else as fast as answered."""
    threads = min(threads, connections)
    if rate:
        env = {**env, "BENCH_INTERVAL_US": str(round(threads * 1e6 / rate, 1))}
    cmd = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        url,
    ]
    used0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env={**os.environ, "BENCH_LUA_DIR": str(LUA), **env}, capture_output=True, text=True)
    used1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    out: dict[str, Any] = json.loads(line)
    # The load tool's own CPU: it shares the two cores with the services.
    out["cpu_s"] = (used1.ru_utime + used1.ru_stime) - (used0.ru_utime + used0.ru_stime)
    return out


def measure(
    meter: CpuMeter,
    url: str,
    script: str,
    env: dict[str, str],
    *,
    seconds: float,
    connections: int,
    rate: float | None = None,
) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    meter.start()
    res = run_wrk(url, script, env, seconds=seconds, connections=connections, rate=rate)
    cpu = meter.stop()
    n = max(res["requests"], 1)
    errors = sum(res["errors"].values())
    return {
        "connections": connections,
        "offered_per_s": rate or "as fast as answered",
        "requests": res["requests"],
        "per_s": round(res["requests"] / (res["duration_us"] / 1e6), 1),
        "p50_ms": res["p50_ms"],
        "p95_ms": res["p95_ms"],
        "p99_ms": res["p99_ms"],
        "errors": errors,
        "error_kinds": {k: v for k, v in res["errors"].items() if v},
        "cpu_ms_per_request": {k: round(v / n * 1000, 3) for k, v in cpu.items()},
        "cpu_ms_per_request_load_tool": round(res["cpu_s"] / n * 1000, 3),
        "cpu_ms_per_request_services": round(
            sum(v for k, v in cpu.items() if k not in ("weed", "postgres_autovacuum")) / n * 1000, 3
        ),
        "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


@contextmanager
def _serve_pid(service: str, env: dict[str, str], *, workers: int = 1) -> Iterator[tuple[str, int]]:
    """harness.serve, plus the uvicorn process id (its workers are its children)."""
    before = {p.pid for p in psutil.Process().children()}
    with serve(service, env, workers=workers) as base:
        pid = next(p.pid for p in psutil.Process().children() if p.pid not in before)
        yield base, pid


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _seed_reads(dsn: str, count: int) -> None:
    """`count` reads spread over the last 20 days (as a month of a fleet's reads would be), in one statement per day."""
    conn = await asyncpg.connect(dsn)
    try:
        days = 20
        per_day = count // days
        for d in range(days):
            day = await conn.fetchval("SELECT (now() - make_interval(days => $1))::date", d + 1)
            name = f"reads_{day:%Y%m%d}"
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS ingest.{name} PARTITION OF ingest.reads "
                f"FOR VALUES FROM ('{day}T00:00:00+00') TO ('{day}T00:00:00+00'::timestamptz + interval '1 day')"
            )
            await conn.execute(
                "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, client_read_id, lat, "
                "lon, plate, plate_source, recognition_pending, match_pending, attempts, hits) "
                "SELECT gen_random_uuid(), $1::date + make_interval(secs => g * 86000.0 / $2), now(), 'MN0270100', "
                "'seed-' || (g % 40), 'front', 'seed-' || $1::text || '-' || g, 45.0, -93.3, "
                "'S' || lpad((g % 1000000)::text, 6, '0'), 'car', false, false, 0, '[]'::jsonb "
                "FROM generate_series(1, $2) g",
                day,
                per_day,
            )
        await conn.execute("ANALYZE ingest.reads")
    finally:
        await conn.close()


async def _agent_backlog(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM ingest.agent_reads")
        pending = await conn.fetchval("SELECT count(*) FROM ingest.agent_reads WHERE finish_pending")
        return int(stored), int(pending)
    finally:
        await conn.close()


def _wait_matched(dsn: str, expected: int, began: float, timeout_s: float = 300) -> dict[str, Any]:
    """Until every accepted post is imported and matched: the import+match rate from the start of the load."""
    deadline = time.monotonic() + timeout_s
    stored = pending = 0
    while time.monotonic() < deadline:
        stored, pending = asyncio.run(_agent_backlog(dsn))
        if stored >= expected and pending == 0:
            took = time.monotonic() - began
            return {"reads": stored, "seconds_from_load_start": round(took, 1), "per_s": round(stored / took, 1)}
        time.sleep(0.5)
    return {"reads": stored, "pending": pending, "expected": expected, "timed_out_s": timeout_s}


def _identity(clients: dict[str, tuple[str, str]], service: str) -> dict[str, str]:
    client_id, secret = clients[service]
    return {"ALPR_SERVICE_CLIENT_ID": client_id, "ALPR_SERVICE_CLIENT_SECRET": secret}


def run(workers: int = 2) -> dict[str, Any]:
    from alpr.bootstrap import ensure_service_clients
    from shared.keys import ensure_signing_key, sign_token
    from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3

    ensure_wrk()
    seconds = float(os.environ.get("BENCH_WRK_SECONDS", "15"))
    conns = int(os.environ.get("BENCH_WRK_CONNECTIONS", "48"))
    seed = int(os.environ.get("BENCH_AGENT_SEED_READS", "1000000"))
    paths = set(
        os.environ.get("BENCH_WRK_PATHS", "healthz,metadata,metadata_paced,metadata_1conn,photo,agents").split(",")
    )
    results: dict[str, Any] = {}
    with database() as url, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        dsn = _dsn(url)
        keys_dir = Path(tmp) / "keys"
        key = ensure_signing_key(keys_dir, "ES256")
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        weed = WeedS3(Path(tmp) / "weed")
        weed.start()
        stack.callback(weed.stop)
        # Each calling service its own identity, as `alpr up` gives them (docs/security.md).
        clients = ensure_service_clients(url, data_dir)
        env = {
            "ALPR_DATABASE_URL": url,
            "ALPR_DATA_DIR": str(data_dir),
            "ALPR_JWT_KEYS_DIR": str(keys_dir),
            "ALPR_S3_ENDPOINT": weed.endpoint,
            "ALPR_S3_ACCESS_KEY": ACCESS_KEY,
            "ALPR_S3_SECRET_KEY": SECRET_KEY,
            "ALPR_S3_BUCKET": BUCKET,
            "ALPR_INGEST_CALL_RECOGNITION": "false",
            "ALPR_DB_POOL_SIZE": "8",
            # As `alpr up` runs it: the agents' importer in a process of its own, ingest's workers only accepting.
            "ALPR_INGEST_AGENT_IMPORT_PROCESS": "true",
        }
        access, access_pid = stack.enter_context(_serve_pid("access", env))
        env["ALPR_ACCESS_URL"] = access
        hotlist, hotlist_pid = stack.enter_context(_serve_pid("hotlist", {**env, **_identity(clients, "hotlist")}))
        env["ALPR_HOTLIST_URL"] = hotlist
        env.update(_identity(clients, "ingest"))  # ingest's workers and its importer
        ingest, ingest_pid = stack.enter_context(_serve_pid("ingest", env, workers=workers))
        importer = subprocess.Popen(
            [sys.executable, "-m", "services.ingest.agents"], env={**os.environ, "ALPR_LOG_LEVEL": "WARNING", **env}
        )
        stack.callback(importer.wait, 15)  # after terminate: callbacks run last first, as harness.serve stops
        stack.callback(importer.terminate)
        weed_pid = weed.proc.pid if getattr(weed, "proc", None) is not None else None
        groups = {"ingest": ingest_pid, "ingest_importer": importer.pid, "hotlist": hotlist_pid, "access": access_pid}
        if weed_pid:
            groups["weed"] = weed_pid
        meter = CpuMeter(groups, dsn)

        badge = "4242"
        token = _token(keys_dir, badge)
        unit = f"wrk-{uuid.uuid4().hex[:6]}"
        resp = httpx.post(
            f"{ingest}/v1/shifts",
            json={"badge": badge, "unit": unit, "cameras": []},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        resp.raise_for_status()
        read_env = {"BENCH_TOKEN": token, "BENCH_UNIT": unit}

        def go(
            name: str,
            target: str,
            script: str,
            extra: dict[str, str],
            c: int,
            secs: float = seconds,
            rate: float | None = None,
        ) -> None:
            # A short warm-up (connections, partitions, token caches), then the measured run.
            warm = {**read_env, **extra, "BENCH_RUN": uuid.uuid4().hex[:10]}
            run_wrk(target, script, warm, seconds=2, connections=c, rate=rate)
            run_env = {**read_env, **extra, "BENCH_RUN": uuid.uuid4().hex[:10]}
            results[name] = measure(meter, target, script, run_env, seconds=secs, connections=c, rate=rate)

        if "healthz" in paths:
            load0 = os.getloadavg()[0]
            meter.start()
            res = run_wrk(f"{ingest}/healthz", "common.lua", {}, seconds=5, connections=conns)
            cpu = meter.stop()
            results["healthz"] = {
                "per_s": round(res["requests"] / (res["duration_us"] / 1e6), 1),
                "p50_ms": res["p50_ms"],
                "p95_ms": res["p95_ms"],
                "cpu_ms_per_request": {
                    k: round(v / max(res["requests"], 1) * 1000, 3) for k, v in cpu.items() if k == "ingest"
                },
                "load_average_1m": round(load0, 2),
            }
        if "metadata" in paths:
            go("metadata_read", ingest, "read_meta.lua", {}, conns)
        if "metadata_paced" in paths:
            read_rate = float(os.environ.get("BENCH_READ_RATE", "1000"))
            # The target as stated: 1,000 reads/s offered, and the latency they get at that rate.
            go("metadata_read_at_1000_per_s", ingest, "read_meta.lua", {}, conns, rate=read_rate)
        if "metadata_1conn" in paths:
            go("metadata_read_1_connection", ingest, "read_meta.lua", {}, 1, min(seconds, 10))
        if "photo" in paths:
            jpeg = Path(tmp) / "photo.jpg"
            jpeg.write_bytes(photo())
            go("read_100kb_photo_and_plate", ingest, "read_photo.lua", {"BENCH_PHOTO": str(jpeg)}, conns)
        if "agents" in paths:
            results["agents"] = _agents(meter, ingest, dsn, key, sign_token, seconds, seed)
    results["machine"] = {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    results["targets"] = {
        "metadata_read": {"per_s": 1000, "p95_ms": 50, "cpu_ms_per_request_services": 2.0},
        "metadata_read_at_1000_per_s": {"per_s": 1000, "p95_ms": 50},
        "read_100kb_photo_and_plate": {"per_s": 600},
        "agents": {"posts_per_s": 2000, "p95_ms": 20, "imported_and_matched_per_s": 2000, "stored_reads": 1000000},
    }
    return results


def _agents(meter: CpuMeter, ingest: str, dsn: str, key: Any, sign: Any, seconds: float, seed: int) -> dict[str, Any]:
    admin = sign(
        key,
        subject="bench-admin",
        audience="alpr",
        issuer="alpr-access",
        ttl_s=3600,
        claims={"roles": ["admin"], "agency": "MN0270100"},
    )
    seeded_in_s = None
    if seed:
        t0 = time.monotonic()
        asyncio.run(_seed_reads(dsn, seed))
        seeded_in_s = round(time.monotonic() - t0, 1)
    tokens = register_agents(ingest, admin, AGENTS, "wrk")
    # A worker that re-read the registry while the agents were being registered reads it again for an unknown token
    # at most once a second: posting sooner would get 401s for the last agents registered.
    time.sleep(1.2)
    env = {"BENCH_TOKENS": ",".join(tokens), "BENCH_RUN": uuid.uuid4().hex[:10]}
    # 2,000 posts/s offered (BENCH_AGENT_RATE) by 50 agents' connections.
    rate = float(os.environ.get("BENCH_AGENT_RATE", "2000"))
    began = time.monotonic()
    paced = measure(meter, ingest, "agent_post.lua", env, seconds=seconds, connections=AGENTS, rate=rate)
    # What was imported and matched while the load ran: the rate import keeps, and what it still owed at the end.
    stored, pending = asyncio.run(_agent_backlog(dsn))
    load_s = time.monotonic() - began
    during = {
        "seconds": round(load_s, 1),
        "accepted": paced["requests"],
        "imported_and_matched": stored - pending,
        "per_s": round((stored - pending) / load_s, 1),
        "backlog_at_end": paced["requests"] - (stored - pending),
    }
    matched = _wait_matched(dsn, paced["requests"], began)
    return {
        "stored_reads_before": seed,
        "seeded_in_s": seeded_in_s,
        "paced": paced,
        "imported_and_matched_during_load": during,
        "imported_and_matched": matched,
    }

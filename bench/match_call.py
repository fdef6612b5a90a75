"""The CPU of one batch's hot-list match call, in ingest (the caller: this process) and in hotlist (its process):
sequential calls of six reads (a batch's size with two ingest instances at 24 connections, docs/scaling.md) against
a running hotlist with a real service token. A fixed per-batch cost that the replicas bench cannot resolve (its runs
scatter by ±20 points on a shared machine) shows here within a few per cent."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import uvloop  # the loop uvicorn runs ingest on

from bench.harness import database
from bench.wrk import _identity, _serve_pid

READS = 6


async def _calls(hotlist: str, access: str, identity: dict[str, str], hotlist_pid: int, n: int, rounds: int):
    from services.ingest.clients import HotlistClient, match_payload
    from shared.service_auth import ServiceTokenProvider

    tokens = ServiceTokenProvider(access, identity["ALPR_SERVICE_CLIENT_ID"], identity["ALPR_SERVICE_CLIENT_SECRET"])
    client = HotlistClient(hotlist, timeout_s=5, tokens=tokens)
    other = psutil.Process(hotlist_pid)
    reads = [
        match_payload(read_id=str(uuid.uuid4()), plate=f"ABC{i}12", state="MN", alternatives=[], agency="MN0271200",
                      unit="bench-car", captured_at=datetime.now(UTC))
        for i in range(READS)
    ]  # fmt: skip
    try:
        for _ in range(300):  # warm: the token, the connection, the verified-token cache
            await client.match_many(reads)
        out = []
        for _ in range(rounds):
            mine, theirs = time.process_time(), sum(other.cpu_times()[:2])
            for _ in range(n):
                await client.match_many(reads)
            out.append(
                {
                    "ingest_ms_per_call": round((time.process_time() - mine) / n * 1e3, 3),
                    "hotlist_ms_per_call": round((sum(other.cpu_times()[:2]) - theirs) / n * 1e3, 3),
                }
            )
        return out
    finally:
        await client.close()


def run() -> dict[str, Any]:
    from alpr.bootstrap import ensure_service_clients
    from shared.keys import ensure_signing_key

    n = int(os.environ.get("BENCH_MATCH_CALLS", "1500"))
    with database() as url, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        keys_dir = Path(tmp) / "keys"
        ensure_signing_key(keys_dir, "ES256")
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        clients = ensure_service_clients(url, data_dir)
        env = {"ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": str(data_dir), "ALPR_JWT_KEYS_DIR": str(keys_dir)}
        access, _ = stack.enter_context(_serve_pid("access", env))
        env["ALPR_ACCESS_URL"] = access
        hotlist, hotlist_pid = stack.enter_context(_serve_pid("hotlist", {**env, **_identity(clients, "hotlist")}))
        rounds = uvloop.run(_calls(hotlist, access, _identity(clients, "ingest"), hotlist_pid, n, 3))
    return {
        "reads_per_call": READS,
        "calls_per_round": n,
        "rounds": rounds,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }

"""Metadata reads through one address with 1 and then 2 ingest instances behind it (tests/support/proxy.py, a
round-robin TCP proxy standing in for a Kubernetes Service): reads/s and server CPU per read for each.

On 2 cores the rate cannot double (the instances share the cores with PostgreSQL, hotlist and the load tool); what
must hold is the CPU per read: a second instance must not make each read dearer by more than 10 %. Server CPU is
that of ingest (each instance, one process each), hotlist, access and this database's PostgreSQL backends: the same
services in every run. The proxy runs in this process: its CPU is reported apart (`cpu_ms_per_request_proxy`), not
counted as the services', as a Kubernetes Service's is not. Each process's idle CPU (its background loops: pending
work, revocations, the hot-list version) is measured before each run and reported apart too (`idle_cpu_ms_per_s`);
`cpu_ms_per_request_services_net_of_idle` subtracts it, since a second instance adds its idle cost per second, not
per read.

Three more runs say why the CPU per read moves (docs/scaling.md): wrk as fast as answered keeps a fixed number of
connections open, so each of 2 instances holds half of them, and its batches (lookup, match call, group commit)
half as many reads: `metadata_read_1_ingest_half_connections` is one instance with that half. And the same offered
rate (BENCH_REPLICAS_RATE reads/s, default 400, below what either serves) to 1 and 2 instances, as a fleet's cars
offer it whatever the number of instances: `cpu_per_read_growth_pct_same_offered_rate`. Each run reports how many
reads each instance's batches held (`reads_per_batch`, from its `alpr_ingest_batch_items`).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.harness import database
from bench.wrk import CpuMeter, _dsn, _identity, _serve_pid, _token, ensure_wrk, measure, run_wrk

IDLE_S = 3.0


def _batch_items(bases: list[str]) -> list[dict[tuple[str, str], float]]:
    """Each instance's `alpr_ingest_batch_items` so far: (batcher, "sum" | "count") -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for base in bases:
        families = text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text)
        out.append(
            {
                (s.labels["batcher"], s.name.rsplit("_", 1)[1]): s.value
                for family in families
                if family.name == "alpr_ingest_batch_items"
                for s in family.samples
                if s.name.endswith(("_sum", "_count"))
            }
        )
    return out


def _reads_per_batch(
    before: list[dict[tuple[str, str], float]], after: list[dict[tuple[str, str], float]]
) -> dict[str, dict[str, float]]:
    """Per instance and batcher, the reads a batch held on average between two scrapes."""
    out = {}
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        batchers = sorted({name for name, _ in a})
        counts = {n: a.get((n, "count"), 0.0) - b.get((n, "count"), 0.0) for n in batchers}
        out[f"ingest_{i}"] = {
            n: round((a.get((n, "sum"), 0.0) - b.get((n, "sum"), 0.0)) / counts[n], 1) for n in batchers if counts[n]
        }
    return out


def _self_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def run() -> dict[str, Any]:
    from alpr.bootstrap import ensure_service_clients
    from shared.keys import ensure_signing_key
    from tests.support.proxy import RoundRobinProxy
    from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3

    ensure_wrk()
    seconds = float(os.environ.get("BENCH_WRK_SECONDS", "15"))
    conns = int(os.environ.get("BENCH_WRK_CONNECTIONS", "48"))
    results: dict[str, Any] = {}
    with database() as url, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        keys_dir = Path(tmp) / "keys"
        ensure_signing_key(keys_dir, "ES256")
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        weed = WeedS3(Path(tmp) / "weed")
        weed.start()
        stack.callback(weed.stop)
        clients = ensure_service_clients(url, data_dir)
        env = {
            "ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": str(data_dir), "ALPR_JWT_KEYS_DIR": str(keys_dir),
            "ALPR_S3_ENDPOINT": weed.endpoint, "ALPR_S3_ACCESS_KEY": ACCESS_KEY, "ALPR_S3_SECRET_KEY": SECRET_KEY,
            "ALPR_S3_BUCKET": BUCKET, "ALPR_INGEST_CALL_RECOGNITION": "false", "ALPR_DB_POOL_SIZE": "8",
        }  # fmt: skip
        access, access_pid = stack.enter_context(_serve_pid("access", env))
        env["ALPR_ACCESS_URL"] = access
        hotlist, hotlist_pid = stack.enter_context(_serve_pid("hotlist", {**env, **_identity(clients, "hotlist")}))
        env["ALPR_HOTLIST_URL"] = hotlist
        env.update(_identity(clients, "ingest"))
        ingests = [stack.enter_context(_serve_pid("ingest", env)) for _ in range(2)]
        ports = [int(base.rsplit(":", 1)[1]) for base, _ in ingests]
        badge = "4243"
        token = _token(keys_dir, badge)
        unit = f"rep-{uuid.uuid4().hex[:6]}"
        resp = httpx.post(f"{ingests[0][0]}/v1/shifts", json={"badge": badge, "unit": unit, "cameras": []},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
        resp.raise_for_status()
        rate = float(os.environ.get("BENCH_REPLICAS_RATE", "400"))
        runs = [
            ("metadata_read_1_ingest", 1, conns, None),
            ("metadata_read_2_ingest", 2, conns, None),
            ("metadata_read_1_ingest_half_connections", 1, max(conns // 2, 1), None),
            (f"metadata_read_1_ingest_at_{rate:g}_per_s", 1, conns, rate),
            (f"metadata_read_2_ingest_at_{rate:g}_per_s", 2, conns, rate),
        ]
        for name, count, c, offered in runs:
            proxy = RoundRobinProxy(ports[:count]).start()
            try:
                groups = {f"ingest_{i}": pid for i, (_, pid) in enumerate(ingests[:count])}
                meter = CpuMeter({**groups, "hotlist": hotlist_pid, "access": access_pid}, _dsn(url))
                read_env = {"BENCH_TOKEN": token, "BENCH_UNIT": unit}
                run_wrk(proxy.url, "read_meta.lua", {**read_env, "BENCH_RUN": uuid.uuid4().hex[:10]}, seconds=2,
                        connections=c, rate=offered)  # fmt: skip
                meter.start()
                time.sleep(IDLE_S)
                idle = meter.stop()
                bases = [base for base, _ in ingests[:count]]
                batches0 = _batch_items(bases)
                proxy_cpu0 = _self_cpu_s()
                res = measure(meter, proxy.url, "read_meta.lua", {**read_env, "BENCH_RUN": uuid.uuid4().hex[:10]},
                              seconds=seconds, connections=c, rate=offered)  # fmt: skip
                res["cpu_ms_per_request_proxy"] = round((_self_cpu_s() - proxy_cpu0) / max(res["requests"], 1) * 1e3, 3)
                res["reads_per_batch"] = _reads_per_batch(batches0, _batch_items(bases))
                res["connections_per_instance"] = [proxy.connections[p] for p in ports[:count]]
                res["idle_cpu_ms_per_s"] = {k: round(v / IDLE_S * 1e3, 1) for k, v in idle.items()}
                duration_s = res["requests"] / max(res["per_s"], 1e-9)
                idle_ms = sum(v for k, v in idle.items() if k != "postgres_autovacuum") / IDLE_S * 1e3 * duration_s
                res["cpu_ms_per_request_services_net_of_idle"] = round(
                    res["cpu_ms_per_request_services"] - idle_ms / max(res["requests"], 1), 3
                )
                results[name] = res
            finally:
                proxy.stop()

    def growth(two: str, one: str, key: str = "cpu_ms_per_request_services") -> float:
        return round((results[two][key] / results[one][key] - 1) * 100, 1)

    results["cpu_per_read_growth_pct"] = growth("metadata_read_2_ingest", "metadata_read_1_ingest")
    results["cpu_per_read_growth_pct_net_of_idle"] = growth(
        "metadata_read_2_ingest", "metadata_read_1_ingest", "cpu_ms_per_request_services_net_of_idle"
    )
    # Two instances against one holding as many connections as each of them: the batches' share of the growth.
    results["cpu_per_read_2_ingest_vs_1_at_half_connections_pct"] = growth(
        "metadata_read_2_ingest", "metadata_read_1_ingest_half_connections"
    )
    results["cpu_per_read_growth_pct_same_offered_rate"] = growth(
        f"metadata_read_2_ingest_at_{rate:g}_per_s", f"metadata_read_1_ingest_at_{rate:g}_per_s"
    )
    results["target"] = {"cpu_per_read_growth_pct_at_most": 10}
    results["machine"] = {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    return results

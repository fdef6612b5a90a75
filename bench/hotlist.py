"""Hotlist: sync of 1 M generated entries from a loopback BCA server, match latency in-process and over HTTP,
delta size for a 1 % change, memory of the in-memory index.

Targets (issue 6): sync ≤ 10 s; match p99 ≤ 1 ms in-process, ≤ 5 ms over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import closed_loop, database, percentiles, serve
from services.hotlist.matching import Matcher, build_index
from services.hotlist.schemas import MatchRequest
from services.hotlist.service import Distribution, find_hits
from services.hotlist.sync import sync_once
from shared.db import create_engine
from shared.keys import ensure_signing_key, sign_token
from shared.settings import Settings
from tests.hotlist.bca import CREDENTIAL, HEADER, FakeBca

CODES = "VPWFDSHMLTCXNKRAQ"
LETTERS = "ABCDEFGHJKMNPRTUVWXY"


def _plates(count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        seen.add("".join(rnd.choice(LETTERS) for _ in range(3)) + f"{rnd.randrange(10000):04d}")
    return sorted(seen)


def _extract(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _rows(plates: list[str], seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [
        f"{CODES[rnd.randrange(len(CODES))]}{i:09d},MN0271200,2025{rnd.randrange(1, 13):02d}15,{p},MN,2025,PC,2015,"
        f"CHEV,MALIBU,4D,BLK"
        for i, p in enumerate(plates)
    ]


async def _bench(url: str, entries: int, http_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"entries": entries}
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        key = ensure_signing_key(keys, "ES256")
        bca = FakeBca()
        bca.start()
        settings = Settings(
            environment="test",
            database_url=url,
            data_dir=Path(tmp),
            jwt_keys_dir=keys,
            hotlist_source_url=bca.url,
            hotlist_source_credential=CREDENTIAL,  # type: ignore[arg-type]
            hotlist_source_timeout_s=120,
            hotlist_versions_kept=2,
        )
        engine = create_engine(settings)
        try:
            plates = _plates(entries, 1)
            rows = _rows(plates, int(time.time()))  # new content each run: the bench database keeps versions
            bca.publish(_extract(rows))
            out["extract_bytes"] = len(bca.body)
            t0 = time.perf_counter()
            first = await sync_once(engine, settings, trigger="bench")
            out["sync_s"] = round(time.perf_counter() - t0, 2)
            out["sync_target_s"] = 10
            out["sync_timings_s"] = first.timings_s
            assert first.outcome == "loaded", first

            # In-memory index: load time in a worker, and its memory.
            matcher = Matcher()
            t0 = time.perf_counter()
            await matcher.refresh(engine)
            out["worker_load_s"] = round(time.perf_counter() - t0, 2)
            csv_rows = "\n".join(f"{r.split(',')[0]},{r[0]},{r.split(',')[3]},MN" for r in rows).encode()
            gc.collect()
            tracemalloc.start()
            index, _ = build_index(csv_rows)
            out["index_memory_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            tracemalloc.stop()
            del index, csv_rows

            # Match latency in-process: a third of reads hit, a third are misreads of listed plates, a third miss.
            rnd = random.Random(3)
            confuse = str.maketrans("0185B", "OI8S8")
            now = datetime.now(UTC)
            samples: list[float] = []
            reads = []
            for i in range(20000):
                p = rnd.choice(plates)
                plate = p if i % 3 == 0 else p.translate(confuse) if i % 3 == 1 else "ZZ" + p[2:]
                reads.append(MatchRequest(read_id=str(i), plate=plate, state="MN", captured_at=now))
            hits = 0
            for req in reads:
                t = time.perf_counter()
                _, found = find_hits(matcher, req, now)
                samples.append((time.perf_counter() - t) * 1000)
                hits += bool(found)
            out["match_in_process"] = {
                **percentiles(samples),
                "p99_target_ms": 1,
                "reads": len(reads),
                "hit_reads": hits,
            }

            # Delta for a 1 % change (0.5 % removed, 0.5 % added) against the full list.
            rnd = random.Random(4)
            drop = set(rnd.sample(range(entries), entries // 200))
            # Two letters and five digits: never one of the listed three-letter plates.
            extra = [f"QQ{i:05d}" for i in range(entries // 200)]
            new_rows = [r for i, r in enumerate(rows) if i not in drop] + [
                f"V{900000000 + i:09d},MN0271200,20251115,{p},MN,2025,PC,2015,CHEV,MALIBU,4D,BLK"
                for i, p in enumerate(extra)
            ]
            bca.publish(_extract(new_rows))
            t0 = time.perf_counter()
            second = await sync_once(engine, settings, trigger="bench")
            out["sync_second_s"] = round(time.perf_counter() - t0, 2)
            dist = Distribution()
            full = await dist.full(engine, second.version or 0)
            t0 = time.perf_counter()
            delta = await dist.delta(engine, first.version or 0, second.version or 0)
            out["delta"] = {
                "change": "1 % (0.5 % removed, 0.5 % added)",
                "delta_gzip_bytes": len(delta),
                "full_gzip_bytes": len(full),
                "build_s": round(time.perf_counter() - t0, 2),
            }
        finally:
            await engine.dispose()
            bca.stop()

        # Over HTTP: one uvicorn worker, closed loop, concurrency 1 (latency) and 8 (throughput).
        token = sign_token(
            key, subject="bench", audience="alpr", issuer="alpr-access", ttl_s=3600, claims={"roles": ["service"]}
        )
        env = {"ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": tmp, "ALPR_JWT_KEYS_DIR": str(keys)}
        with serve("hotlist", env) as base:
            headers = {"Authorization": f"Bearer {token}"}
            counter = iter(range(10**9))

            def request(kind: str):  # type: ignore[no-untyped-def]
                def send(client):  # type: ignore[no-untyped-def]
                    i = next(counter)
                    p = plates[(i * 7919) % len(plates)]
                    plate = p if kind == "hit" else "ZZ" + p[2:]
                    return client.post(
                        "/v1/match",
                        headers=headers,
                        json={"read_id": f"b{i}", "plate": plate, "state": "MN", "captured_at": "2026-11-25T10:00:00Z"},
                    )

                return send

            # Misses answer from memory; a hit is also stored (one durable commit) before the answer.
            for kind in ("miss", "hit"):
                res = await closed_loop(request(kind), base_url=base, concurrency=1, duration_s=http_s)
                out[f"match_http_{kind}_c1"] = {**res, "p99_target_ms": 5}
            out["match_http_miss_c8"] = await closed_loop(
                request("miss"), base_url=base, concurrency=8, duration_s=http_s
            )
    return out


@contextlib.contextmanager
def _own_database() -> Iterator[str]:
    """A fresh database on TEST_DATABASE_URL's server (versions from other runs or branches never meet ours),
    else the harness's."""
    maintenance = os.environ.get("TEST_DATABASE_URL")
    if os.environ.get("ALPR_DATABASE_URL") or not maintenance:
        with database() as url:
            yield url
        return
    from alpr.migrate import upgrade
    from tests.support.pg import create_test_database, drop_database

    url = create_test_database(maintenance)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(maintenance, url)


def run(entries: int = 1_000_000, http_s: float = 5.0) -> dict[str, Any]:
    with _own_database() as url:
        return asyncio.run(_bench(url, entries, http_s))


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))

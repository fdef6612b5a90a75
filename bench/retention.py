"""Retention and reports: the purge of one day of reads with photos, and report generation over many reads.

- Purge: a day of `ALPR_BENCH_PURGE_READS` reads (100 k) in its partition, and `ALPR_BENCH_PURGE_OBJECTS` small
  photos (1 KB; default 20 k: 100 k PUTs on `weed mini` take longer than the benchmark should) under the day's
  prefix. The rows part is the full day; the objects part is timed and extrapolated per 100 k objects, stated so.
- Reports: `ALPR_BENCH_REPORT_READS` reads (10 M) over 60 days and 10 units, plus hits (0.5 %), generated server-side;
  then the log of use and the biennial audit report through the access app, which gets ingest's and hotlist's
  figures over HTTP (in-process ASGI transports: the time is PostgreSQL's grouping, not the network).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from bench.harness import s3_deployment
from shared.keys import ensure_signing_key, sign_token
from shared.settings import Settings


async def _gen_day(engine: Any, day: datetime, reads: int, units: int, *, keys: bool) -> None:
    from services.ingest.writer import ensure_partition

    async with engine.begin() as conn:
        await ensure_partition(conn, day.date())
    key = (
        f"'reads/{day:%Y/%m/%d}/' || md5(i::text) || '.jpg'" if keys else "NULL"
    )  # the key's read id part is not parsed by the purge
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, client_read_id, lat, "
                "lon, plate, recognition_pending, match_pending, attempts, hits, image_key) "
                "SELECT gen_random_uuid(), "
                "CAST(:d AS timestamptz) + (i * (86399.0 / CAST(:n AS int))) * interval '1 second', "
                "CAST(:d AS timestamptz), 'MN0271200', 'U' || (i % CAST(:u AS int)), 'front', 'b' || i, 45.0, -93.3, "
                "'P' || (i % 99991), false, false, 0, '[]'::jsonb, "
                f"{key} FROM generate_series(1, CAST(:n AS int)) AS i"
            ),
            {"d": day, "n": reads, "u": units},
        )


async def _purge(settings: Settings, reads: int, objects: int) -> dict[str, Any]:
    from services.ingest import retention
    from shared.db import create_engine
    from shared.storage import create_store

    engine = create_engine(settings)
    store = create_store(settings)
    await store.ensure_bucket()  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    # Everything already due is purged first: the measured run is one day.
    await retention.purge(engine, store, settings, actor="bench", trigger="cli", at=now)
    day = datetime.combine((now - timedelta(days=settings.retention_days + 1)).date(), datetime.min.time(), UTC)
    t0 = time.perf_counter()
    await _gen_day(engine, day, reads, 10, keys=True)
    gen_rows_s = time.perf_counter() - t0
    sem = asyncio.Semaphore(32)
    photo = b"\xff\xd8" + os.urandom(1020) + b"\xff\xd9"

    async def put(i: int) -> None:
        async with sem:
            await store.put(f"reads/{day:%Y/%m/%d}/obj{i:06d}.jpg", photo, "image/jpeg")

    t0 = time.perf_counter()
    await asyncio.gather(*(put(i) for i in range(objects)))
    put_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dry = await retention.purge(engine, store, settings, actor="bench", trigger="cli", dry_run=True, at=now)
    dry_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    objects_step = await retention.delete_day_objects(engine, store, day.date())
    objects_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = await retention.purge(engine, store, settings, actor="bench", trigger="cli", at=now)
    rows_s = time.perf_counter() - t0
    await engine.dispose()
    per_100k_objects = objects_s / max(objects_step.objects_destroyed, 1) * 100_000
    return {
        "reads": reads,
        "objects": objects,
        "photo_bytes": len(photo),
        "generate_rows_s": round(gen_rows_s, 2),
        "put_objects_s": round(put_s, 2),
        "dry_run_s": round(dry_s, 2),
        "dry_run_counted_reads": dry.reads_destroyed,
        "delete_objects_s": round(objects_s, 2),
        "objects_deleted": objects_step.objects_destroyed,
        "delete_objects_per_s": round(objects_step.objects_destroyed / objects_s, 1) if objects_s else None,
        "rows_step_s": round(rows_s, 3),
        "reads_destroyed": report.reads_destroyed,
        "partitions_dropped": report.partitions_dropped,
        "extrapolated_day_100k_reads_100k_objects_s": round(rows_s + per_100k_objects, 1),
    }


async def _reports(settings: Settings, keys_dir: Path, reads: int) -> dict[str, Any]:
    from services.access.main import create_app as access_app
    from services.hotlist.main import create_app as hotlist_app
    from services.ingest.main import create_app as ingest_app
    from shared.db import create_engine
    from tests.support.apps import running

    engine = create_engine(settings)
    # Old enough to be clear of the purge bench's day, young enough not to be due (no purge runs here).
    first = datetime.combine((datetime.now(UTC) - timedelta(days=59)).date(), datetime.min.time(), UTC)
    days = 60
    async with engine.connect() as conn:
        have = (
            await conn.execute(
                text("SELECT count(*) FROM ingest.reads WHERE captured_at >= :s AND captured_at < :e"),
                {"s": first - timedelta(days=1), "e": first + timedelta(days=days)},
            )
        ).scalar_one()
    t0 = time.perf_counter()
    if have != reads:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM ingest.reads WHERE captured_at >= :s"), {"s": first - timedelta(days=1)}
            )
            await conn.execute(text("DELETE FROM hotlist.hits WHERE unit LIKE 'U%' AND list_name = 'bench'"))
        per_day = reads // days
        for d in range(days):
            n = per_day if d < days - 1 else reads - per_day * (days - 1)
            await _gen_day(engine, first + timedelta(days=d), n, 10, keys=False)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                    "match, read_plate, entry_plate, state_check, covert, priority, past_read, unit, captured_at, "
                    "created_at) SELECT gen_random_uuid(), md5(i::text), 'V', 'bench', 'c' || (i % 7), 'c', 'vehicle', "
                    "'exact', 'X', 'X', 'match', false, 0, false, 'U' || (i % 10), "
                    "CAST(:s AS timestamptz) + (i * (:days * 86399.0 / :n)) * interval '1 second', now() "
                    "FROM generate_series(1, :n) i"
                ),
                {"s": first, "n": reads // 200, "days": days},
            )
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE ingest.reads"))
    gen_s = time.perf_counter() - t0
    await engine.dispose()
    ingest = ingest_app(settings, run_worker=False)
    hotlist = hotlist_app(settings)
    signer = ensure_signing_key(keys_dir)
    token = sign_token(
        signer,
        subject="bench-auditor",
        audience="alpr",
        issuer="alpr-access",
        ttl_s=3600,
        claims={"roles": ["auditor", "supervisor"], "agency": "MN0271200"},  # the agency whose data it reads
    )
    params = {"start": first.isoformat(), "end": (first + timedelta(days=days)).isoformat()}
    out: dict[str, Any] = {
        "reads": reads,
        "days": days,
        "units": 10,
        "hits": reads // 200,
        "generate_s": round(gen_s, 1),
    }
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            client.timeout = httpx.Timeout(600)
            headers = {"Authorization": f"Bearer {token}"}
            for name, path, extra in (
                ("log_of_use_json", "/v1/reports/log-of-use", {}),
                ("log_of_use_csv", "/v1/reports/log-of-use", {"format": "csv"}),
                ("audit_json", "/v1/reports/audit", {}),
                ("audit_html", "/v1/reports/audit", {"format": "html"}),
            ):
                t0 = time.perf_counter()
                resp = await client.get(path, params={**params, **extra}, headers=headers)
                out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
                if resp.status_code != 200:
                    out[f"{name}_error"] = resp.text[:200]
                elif name == "log_of_use_json":
                    out["reads_counted"] = resp.json()["totals"]["reads"]
    return out


def run() -> dict[str, Any]:
    purge_reads = int(os.environ.get("ALPR_BENCH_PURGE_READS", "100000"))
    purge_objects = int(os.environ.get("ALPR_BENCH_PURGE_OBJECTS", "20000"))
    report_reads = int(os.environ.get("ALPR_BENCH_REPORT_READS", "10000000"))
    with s3_deployment() as (settings, keys_dir):
        purge = asyncio.run(_purge(settings, purge_reads, purge_objects))
        reports = asyncio.run(_reports(settings, keys_dir, report_reads)) if report_reads else {"skipped": True}
    return {"purge_one_day": purge, "reports": reports, "store": "s3 (weed mini)"}

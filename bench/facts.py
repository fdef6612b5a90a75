"""Daily facts (services/*/facts.py) and the reports read from them.

- Write: one day of `ALPR_BENCH_FACT_READS` reads (100 k; 10 units, repeats, one in 20 with no plate) and 0.5 % hits;
  the time to write that day's read facts and hit facts (what the purge does before destroying the day).
- Report: two years of sealed daily facts standing for `ALPR_BENCH_FACT_REPORT_READS` reads (10 M) over 10 units,
  with a shift per unit and day, and hits by category and list; then the biennial audit report over those two years
  through the access app (ingest's and hotlist's figures over in-process ASGI transports), as JSON and as PDF.
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

UNITS = 10
CATEGORIES = ("stolen_vehicle", "wanted_vehicle", "license_status", "warrant", "investigation")


async def _write(settings: Settings, reads: int) -> dict[str, Any]:
    from services.hotlist import facts as hit_facts
    from services.ingest import facts
    from services.ingest.writer import ensure_partition
    from shared.db import create_engine

    engine = create_engine(settings)
    day = (datetime.now(UTC) - timedelta(days=3)).date()
    d0 = datetime(day.year, day.month, day.day, tzinfo=UTC)
    async with engine.begin() as conn:
        await ensure_partition(conn, day)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, client_read_id, lat, "
                "lon, plate, recognition_pending, match_pending, attempts, hits) "
                "SELECT gen_random_uuid(), CAST(:d AS timestamptz) + (i * (86399.0 / :n)) * interval '1 second', "
                "CAST(:d AS timestamptz), 'MN0271200', 'U' || (i % :u), 'front', 'f' || i, 45.0, -93.3, "
                "CASE WHEN i % 20 = 0 THEN NULL ELSE 'P' || (i % 40009) END, false, false, 0, '[]'::jsonb "
                "FROM generate_series(1, :n) i"
            ),
            {"d": d0, "n": reads, "u": UNITS},
        )
        await conn.execute(
            text(
                "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                "match, read_plate, entry_plate, state_check, covert, priority, past_read, agency, unit, captured_at, "
                "created_at) SELECT gen_random_uuid(), md5(i::text), 'V', CASE WHEN i % 5 = 4 THEN 'inv' ELSE 'bca' "
                "END, (CAST(:cats AS text[]))[1 + i % 5], 'c', 'vehicle', 'exact', 'X', 'X', 'match', i % 5 = 4, 0, "
                "false, 'MN0271200', 'U' || (i % :u), CAST(:d AS timestamptz) + (i * (86399.0 / :h)) * "
                "interval '1 second', now() FROM generate_series(1, :h) i"
            ),
            {"d": d0, "h": reads // 200, "u": UNITS, "cats": list(CATEGORIES)},
        )
        await conn.execute(text("ANALYZE ingest.reads"))
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        await facts.write_day(conn, day, seal=False)
    reads_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        await hit_facts.write_day(conn, day, seal=False)
    hits_s = time.perf_counter() - t0
    async with engine.connect() as conn:
        counted = (
            await conn.execute(text("SELECT sum(reads) FROM ingest.read_facts WHERE day = :d"), {"d": day})
        ).scalar_one()
        rows = (await conn.execute(text("SELECT count(*) FROM ingest.read_facts WHERE day = :d"), {"d": day})).scalar()
    await engine.dispose()
    return {
        "reads": reads,
        "hits": reads // 200,
        "reads_counted": int(counted),
        "fact_rows": int(rows or 0),
        "write_read_facts_s": round(reads_s, 3),
        "write_hit_facts_s": round(hits_s, 3),
        "write_day_s": round(reads_s + hits_s, 3),
    }


async def _seed_two_years(settings: Settings, reads: int) -> tuple[datetime, datetime]:
    from shared.db import create_engine

    engine = create_engine(settings)
    end_day = (datetime.now(UTC) - timedelta(days=400)).date()
    first_day = end_day - timedelta(days=730)
    per = max(reads // (730 * UNITS), 1)
    p = {"f": first_day, "u": UNITS, "per": per, "cats": list(CATEGORIES)}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at, "
                "ended_at, end_reason) SELECT md5(d::text || '-' || u)::uuid, 'U' || u, 'MN0271200', 'B' || u, 'o', "
                "ARRAY['front'], (CAST(:f AS date) + d)::timestamptz + interval '8 hours', "
                "(CAST(:f AS date) + d)::timestamptz + interval '18 hours', "
                "(CAST(:f AS date) + d)::timestamptz + interval '18 hours', 'logout' "
                "FROM generate_series(0, 729) d, generate_series(0, :u - 1) u"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO ingest.read_facts (day, agency, unit, reader, shift_id, reads, distinct_plates, "
                "reads_no_plate, classification) SELECT CAST(:f AS date) + d, 'MN0271200', 'U' || u, 'unit:U' || u, "
                "md5(d::text || '-' || u)::uuid::text, :per, :per * 8 / 10, :per / 20, "
                "jsonb_build_object('private', :per - 3, 'active_investigative', 3) "
                "FROM generate_series(0, 729) d, generate_series(0, :u - 1) u"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO ingest.read_fact_days (day, written_at, sealed) "
                "SELECT CAST(:f AS date) + d, now(), true FROM generate_series(0, 729) d"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO hotlist.hit_facts (day, agency, unit, category, list_name, covert, hits, outcomes) "
                "SELECT CAST(:f AS date) + d, 'MN0271200', 'U' || u, (CAST(:cats AS text[]))[c], "
                "CASE WHEN c = 5 THEN 'inv' ELSE 'bca' END, c = 5, :per / 1000 + 1, "
                "jsonb_build_object('valid:stop', 1) "
                "FROM generate_series(0, 729) d, generate_series(0, :u - 1) u, generate_series(1, 5) c"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO hotlist.hit_fact_days (day, written_at, sealed) "
                "SELECT CAST(:f AS date) + d, now(), true FROM generate_series(0, 729) d"
            ),
            p,
        )
    await engine.dispose()
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    return start, start + timedelta(days=730)


async def _report(settings: Settings, keys_dir: Path, reads: int) -> dict[str, Any]:
    from services.access.main import create_app as access_app
    from services.hotlist.main import create_app as hotlist_app
    from services.ingest.main import create_app as ingest_app
    from tests.support.apps import running

    t0 = time.perf_counter()
    start, end = await _seed_two_years(settings, reads)
    out: dict[str, Any] = {"reads": reads, "days": 730, "units": UNITS, "seed_s": round(time.perf_counter() - t0, 1)}
    signer = ensure_signing_key(keys_dir)
    token = sign_token(
        signer,
        subject="bench-auditor",
        audience="alpr",
        issuer="alpr-access",
        ttl_s=3600,
        claims={"roles": ["auditor"], "agency": "MN0271200"},  # the agency whose data it reads
    )
    ingest = ingest_app(settings, run_worker=False)
    hotlist = hotlist_app(settings)
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            client.timeout = httpx.Timeout(600)
            params = {"start": start.isoformat(), "end": end.isoformat()}
            # A warm server: the first request of a process pays for imports, pools and schema building.
            warm = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
            for fmt in ("json", "pdf"):
                await client.get(
                    "/v1/reports/audit", params={**warm, "format": fmt}, headers={"Authorization": f"Bearer {token}"}
                )
            for name, fmt in (("audit_json", "json"), ("audit_pdf", "pdf")):
                t0 = time.perf_counter()
                resp = await client.get(
                    "/v1/reports/audit",
                    params={**params, "format": fmt},
                    headers={"Authorization": f"Bearer {token}"},
                )
                out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
                if resp.status_code != 200:
                    out[f"{name}_error"] = resp.text[:200]
                elif fmt == "json":
                    out["reads_counted"] = resp.json()["classification"]["reads_total"]
                else:
                    out["pdf_bytes"] = len(resp.content)
    return out


def run() -> dict[str, Any]:
    write_reads = int(os.environ.get("ALPR_BENCH_FACT_READS", "100000"))
    report_reads = int(os.environ.get("ALPR_BENCH_FACT_REPORT_READS", "10000000"))
    with s3_deployment() as (settings, keys_dir):
        write = asyncio.run(_write(settings, write_reads))
        report = asyncio.run(_report(settings, keys_dir, report_reads))
    return {"write_one_day": write, "biennial_report": report, "load": os.getloadavg()}

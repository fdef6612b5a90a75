"""The group commit's INSERT runs on connections where PostgreSQL may keep its generic plan (issue 31: planning it
for every batch cost 0.25-0.3 ms of PostgreSQL CPU per commit). That plan must not turn on the day's data: with a
month of shifts and a busy day's reads analysed, the generic plan probes the shift by its primary key and inserts
without reading any stored read. (While the shifts table is small the plan scans it, as it should; PostgreSQL
remakes a kept plan once the table's statistics are updated, which autovacuum's analyse does as the table grows.)"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.ingest import direct
from services.ingest.writer import READS, _insert_sql
from shared.settings import Settings

DAY = date(2031, 3, 15)  # a day of its own: its partition, shifts and reads are rolled back with the test
NAMES = ("id", "captured_at", "received_at", "agency", "unit", "shift_id", "camera", "client_read_id", "lat", "lon",
         "plate", "plate_source", "recognition_pending", "match_pending", "attempts", "hits")  # fmt: skip


def _array(values: list[object]) -> str:
    """A PostgreSQL array literal of text elements (cast by the statement's own CASTs)."""
    return "'{" + ",".join(json.dumps(str(v)) for v in values) + "}'"


async def _commit_plan(settings: Settings) -> str:
    shift = uuid.uuid4()
    at = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
    row = {
        "id": uuid.uuid4(), "captured_at": at.isoformat(), "received_at": at.isoformat(), "agency": "MN0270100",
        "unit": "plan-unit", "shift_id": shift, "camera": "front", "client_read_id": "plan-read", "lat": 45.0,
        "lon": -93.3, "plate": "PLAN1", "plate_source": "car", "recognition_pending": "false",
        "match_pending": "false", "attempts": 0, "hits": "[]",
    }  # fmt: skip
    sql, order = direct.positional(_insert_sql(NAMES))
    values = {f"c_{n}": _array([row[n]]) for n in NAMES} | {"must_be_open": "'{true}'", "open_ids": _array([shift])}
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            tx = await conn.begin()
            try:
                await conn.execute(text("SELECT ingest.create_reads_partition(:day)"), {"day": DAY})
                # A month of shifts and a busy day's reads, analysed, so the planner knows them.
                await conn.exec_driver_sql(
                    "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at) "
                    "SELECT gen_random_uuid(), 'plan-' || g, 'MN0270100', '1', 'o', '{}', now() - interval '1 day', "
                    "now() - interval '12 hours' FROM generate_series(1, 20000) g"
                )
                await conn.execute(
                    text(
                        "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at) "
                        "VALUES (:id, 'plan-unit', 'MN0270100', '1', 'o', '{}', now(), now() + interval '1 hour')"
                    ),
                    {"id": shift},
                )
                await conn.exec_driver_sql(
                    "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, client_read_id, "
                    f"plate, recognition_pending, match_pending, attempts, hits) SELECT gen_random_uuid(), "
                    f"DATE '{DAY.isoformat()}' + make_interval(secs => g * 4.0), now(), 'MN0270100', 'plan-' || "
                    "(g % 40), 'front', 'plan-' || g, 'P' || g, false, false, 0, '[]'::jsonb "
                    "FROM generate_series(1, 20000) g"
                )
                await conn.execute(text("ANALYZE ingest.shifts"))
                await conn.execute(text(f"ANALYZE ingest.reads_{DAY:%Y%m%d}"))
                await conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
                await conn.exec_driver_sql(f"PREPARE commit_plan AS {sql}")
                args = ", ".join(values[n] for n in order)
                rows = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE commit_plan({args})")
                return "\n".join(r[0] for r in rows)
            finally:
                await tx.rollback()
    finally:
        await engine.dispose()


async def test_the_group_commit_probes_the_shift_by_key_under_a_generic_plan(settings: Settings) -> None:
    assert set(NAMES) <= {c.name for c in READS.c}
    plan = await _commit_plan(settings)
    assert "Seq Scan on shifts" not in plan, plan  # the shift check: one probe, not a month of shifts
    assert "pk_shifts" in plan, plan
    assert "Seq Scan on reads" not in plan, plan  # the INSERT reads no stored read (conflicts: the indexes)
    assert "Insert on reads" in plan, plan

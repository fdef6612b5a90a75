"""The idempotency lookup stays a probe of the client-key index per key, also under the generic plan a prepared
statement ends up with: a join the planner may turn into a scan of the whole day's reads costs PostgreSQL CPU in
proportion to the day's reads on every lookup (issue 18)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from services.ingest.writer import LOOKUP_SQL
from shared.settings import Settings

DAY = date(2031, 3, 14)  # a day of its own: its partition and reads are rolled back with the test


def _fill(day: date) -> str:
    """A busy day: 20,000 reads of 40 units."""
    return (
        "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, "
        "client_read_id, lat, lon, plate, plate_source, recognition_pending, match_pending, "
        "attempts, hits) SELECT gen_random_uuid(), "
        f"DATE '{day.isoformat()}' + make_interval(secs => g * 4.0), now(), 'MN0270100', "
        "'plan-' || (g % 40), 'front', 'plan-' || g, 45.0, -93.3, "
        "'P' || g, 'car', false, false, 0, '[]'::jsonb FROM generate_series(1, 20000) g"
    )


def _execute(day: date, name: str, prefix: str = "") -> str:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    lo, hi = (at - timedelta(days=1)).isoformat(), (at + timedelta(days=1)).isoformat()
    # The cars' plates (the Safe at Home check beside it) come first in the statement.
    keys = "ARRAY['MN0270100'], ARRAY['plan-1'], ARRAY['plan-41']"
    return f"{prefix}EXECUTE {name}(ARRAY['P41'], {keys}, '{lo}', '{hi}')"


async def _plan(settings: Settings, sql: str) -> str:
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            tx = await conn.begin()
            try:
                await conn.execute(text("SELECT ingest.create_reads_partition(:day)"), {"day": DAY})
                await conn.exec_driver_sql(_fill(DAY))  # analysed below, so the planner knows
                await conn.execute(text(f"ANALYZE ingest.reads_{DAY:%Y%m%d}"))
                await conn.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
                await conn.exec_driver_sql(
                    f"PREPARE lookup_plan (text[], text[], text[], text[], timestamptz, timestamptz) AS {sql}"
                )
                rows = await conn.exec_driver_sql(_execute(DAY, "lookup_plan", "EXPLAIN (ANALYZE, COSTS OFF) "))
                return "\n".join(r[0] for r in rows)
            finally:
                await tx.rollback()
    finally:
        await engine.dispose()


async def test_the_lookup_probes_the_client_key_index_under_a_generic_plan(settings: Settings) -> None:
    sql = str(text(LOOKUP_SQL).compile(dialect=asyncpg.dialect()))  # type: ignore[no-untyped-call]
    plan = await _plan(settings, sql)
    assert "Nested Loop" in plan, plan
    assert "Hash Join" not in plan and "Seq Scan on reads" not in plan, plan
    assert f"reads_{DAY:%Y%m%d}_captured_at_idx" not in plan, plan  # not the day's reads by capture time
    probe = next(line for line in plan.splitlines() if "Index" in line and "Scan" in line and " reads_" in line)
    assert "client_read_id" in probe, plan  # the (agency, unit, client_read_id, captured_at) index

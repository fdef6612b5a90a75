"""Daily facts of reads (Minn. Stat. 13.824 subd. 5 and 6): counted from the live reads, written at the end of each
day and again by the purge just before it destroys a day (then the day is sealed: never counted again from what the
purge left). The reports read sealed days from the facts and the other days live, so a period reads the same before
and after its purge, at any age.

A fact is per day, agency, unit, reader ("unit:<unit>" for a car, "agent:<id>" for a camera agent) and shift: reads,
distinct plates, reads with no plate, reads by classification. Days are UTC days; a period counts a sealed day when
the day begins in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.writer import partition_days

FACT_LOCK = "ingest.read_facts"

# The reads of [s, e) grouped as facts; `:sealed` days are left out (their facts are final).
_GROUPED = """
WITH r AS (
    SELECT (r.captured_at AT TIME ZONE 'UTC')::date AS day, r.agency, r.unit,
           coalesce('agent:' || ar.agent_id::text, 'unit:' || r.unit) AS reader,
           coalesce(r.shift_id::text, '') AS shift_id, nullif(r.plate, '') AS plate, r.classification
    FROM ingest.reads r
    LEFT JOIN ingest.agent_reads ar ON ar.read_id = r.id AND ar.captured_at >= :s AND ar.captured_at < :e
    WHERE r.captured_at >= :s AND r.captured_at < :e AND (NOT :agents_only OR ar.agent_id IS NOT NULL)
      AND (CAST(:agency AS text) IS NULL OR r.agency = CAST(:agency AS text))
      AND NOT ((r.captured_at AT TIME ZONE 'UTC')::date = ANY(CAST(:sealed AS date[])))
), c AS (
    SELECT day, agency, unit, reader, shift_id, jsonb_object_agg(classification, n) AS classification
    FROM (SELECT day, agency, unit, reader, shift_id, classification, count(*) AS n FROM r GROUP BY 1, 2, 3, 4, 5, 6) x
    GROUP BY 1, 2, 3, 4, 5
)
SELECT g.day, g.agency, g.unit, g.reader, g.shift_id, g.reads, g.distinct_plates, g.reads_no_plate, c.classification
FROM (
    SELECT day, agency, unit, reader, shift_id, count(*) AS reads, count(DISTINCT plate) AS distinct_plates,
           count(*) FILTER (WHERE plate IS NULL) AS reads_no_plate
    FROM r GROUP BY 1, 2, 3, 4, 5
) g JOIN c USING (day, agency, unit, reader, shift_id)
"""


def _bounds(day: date) -> tuple[datetime, datetime]:
    s = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return s, s + timedelta(days=1)


async def write_day(conn: Any, day: date, *, seal: bool) -> bool:
    """Write (or rewrite) the facts of `day` in the caller's transaction; False when the day is sealed already
    (idempotent: the purge may run again over a day it destroyed)."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{FACT_LOCK} {day}"})
    sealed = (
        await conn.execute(text("SELECT sealed FROM ingest.read_fact_days WHERE day = :d"), {"d": day})
    ).scalar_one_or_none()
    if sealed:
        return False
    s, e = _bounds(day)
    await conn.execute(text("DELETE FROM ingest.read_facts WHERE day = :d"), {"d": day})
    await conn.execute(
        text(
            "INSERT INTO ingest.read_facts (day, agency, unit, reader, shift_id, reads, distinct_plates, "
            f"reads_no_plate, classification) {_GROUPED}"
        ),
        {"s": s, "e": e, "sealed": [], "agents_only": False, "agency": None},
    )
    await conn.execute(
        text(
            "INSERT INTO ingest.read_fact_days (day, written_at, sealed) VALUES (:d, now(), :seal) "
            "ON CONFLICT (day) DO UPDATE SET written_at = now(), sealed = EXCLUDED.sealed"
        ),
        {"d": day, "seal": seal},
    )
    return True


async def write_pending(engine: AsyncEngine, at: datetime | None = None) -> list[date]:
    """The end-of-day writer: every finished day with reads and no facts yet (run by the scheduled purge)."""
    today = (at or datetime.now(UTC)).astimezone(UTC).date()
    async with engine.connect() as conn:
        done = set((await conn.execute(text("SELECT day FROM ingest.read_fact_days"))).scalars())
    written = []
    for day in await partition_days(engine):
        if day < today and day not in done:
            async with engine.begin() as conn:
                if await write_day(conn, day, seal=False):
                    written.append(day)
    return written


@dataclass
class FactRow:
    day: str
    agency: str
    unit: str
    reader: str
    shift_id: str
    reads: int
    distinct_plates: int
    reads_no_plate: int


@dataclass
class PeriodFacts:
    rows: list[FactRow]
    classification: dict[str, int]  # reads by classification over the period


async def period(
    session: Any, start: datetime, end: datetime, *, agents_only: bool = False, agency: str | None = None
) -> PeriodFacts:
    """The facts of [start, end): sealed days from the facts table, every other day counted live. Classification
    counts are summed in PostgreSQL (two years of facts: decoding each row's JSON costs more than the sum).
    `agents_only`: the camera agents' facts only (the register of fixed readers); `agency`: that custodian
    agency's facts only (None: every agency's)."""
    sealed = list(
        (
            await session.execute(
                text("SELECT day FROM ingest.read_fact_days WHERE sealed AND day >= :sd AND day < :ed"),
                {"sd": start.astimezone(UTC).date(), "ed": _day_after(end)},
            )
        ).scalars()
    )
    in_period = [d for d in sealed if start <= _bounds(d)[0] < end]
    days = {"days": in_period, "agency": agency}
    kept = (
        await session.execute(
            text(
                "SELECT day, agency, unit, reader, shift_id, reads, distinct_plates, reads_no_plate "
                "FROM ingest.read_facts WHERE day = ANY(CAST(:days AS date[])) "
                "AND (NOT :agents_only OR reader LIKE 'agent:%') "
                "AND (CAST(:agency AS text) IS NULL OR agency = CAST(:agency AS text))"
            ),
            {**days, "agents_only": agents_only},
        )
    ).all()
    classification: dict[str, int] = {
        k: int(v)
        for k, v in (
            await session.execute(
                text(
                    "SELECT x.k, sum(CAST(x.v AS bigint)) FROM ingest.read_facts f, "
                    "jsonb_each_text(f.classification) AS x(k, v) WHERE f.day = ANY(CAST(:days AS date[])) "
                    "AND (CAST(:agency AS text) IS NULL OR f.agency = CAST(:agency AS text)) GROUP BY x.k"
                ),
                days,
            )
        ).all()
    }
    live = (
        await session.execute(
            text(_GROUPED),
            {"s": start, "e": end, "sealed": sealed, "agents_only": agents_only, "agency": agency},
        )
    ).all()
    for r in live:
        for k, v in r[8].items():
            classification[k] = classification.get(k, 0) + int(v)
    rows = [
        FactRow(
            day=r[0].isoformat(),
            agency=r[1],
            unit=r[2],
            reader=r[3],
            shift_id=r[4],
            reads=int(r[5]),
            distinct_plates=int(r[6]),
            reads_no_plate=int(r[7]),
        )
        for r in [*kept, *live]
    ]
    return PeriodFacts(rows=rows, classification=dict(sorted(classification.items())))


def _day_after(at: datetime) -> date:
    return at.astimezone(UTC).date() + timedelta(days=1)

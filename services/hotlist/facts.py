"""Daily facts of hits (Minn. Stat. 13.824 subd. 5(a)(3), 6): hits per day, agency, unit, category and list (covert
lists marked, so the public log of use leaves them out), with the dispositions in force by outcome. Written at the
end of each day and by the purge just before it destroys a day's hits (the day is then sealed); the reports read
sealed days from here and the other days live. Days are UTC days of the hit's capture time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

FACT_LOCK = "hotlist.hit_facts"
_AT = "coalesce(h.captured_at, h.created_at)"

# Hits of [s, e) grouped as facts, sealed days left out; the outcome is the last disposition (a correction wins).
_GROUPED = f"""
WITH h AS (
    SELECT h.id, ({_AT} AT TIME ZONE 'UTC')::date AS day, coalesce(h.agency, '') AS agency,
           coalesce(h.unit, '') AS unit, h.category, h.list_name, h.covert
    FROM hotlist.hits h
    WHERE {_AT} >= :s AND {_AT} < :e AND NOT (({_AT} AT TIME ZONE 'UTC')::date = ANY(CAST(:sealed AS date[])))
      AND (CAST(:agency AS text) IS NULL OR coalesce(h.agency, '') = CAST(:agency AS text))
), last AS (
    SELECT DISTINCT ON (d.hit_id) d.hit_id,
           CASE WHEN d.valid THEN 'valid' ELSE 'invalid' END || ':' || d.action AS outcome
    FROM hotlist.hit_dispositions d JOIN h ON h.id = d.hit_id ORDER BY d.hit_id, d.at DESC
), g AS (
    SELECT h.day, h.agency, h.unit, h.category, h.list_name, last.outcome, bool_or(h.covert) AS covert, count(*) AS n
    FROM h LEFT JOIN last ON last.hit_id = h.id GROUP BY 1, 2, 3, 4, 5, 6
)
SELECT day, agency, unit, category, list_name, bool_or(covert), sum(n)::int,
       coalesce(jsonb_object_agg(outcome, n) FILTER (WHERE outcome IS NOT NULL), '{{}}'::jsonb)
FROM g GROUP BY 1, 2, 3, 4, 5
"""


def _bounds(day: date) -> tuple[datetime, datetime]:
    s = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return s, s + timedelta(days=1)


async def write_day(conn: Any, day: date, *, seal: bool) -> bool:
    """(Re)write the facts of `day` in the caller's transaction; False when the day is sealed already."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{FACT_LOCK} {day}"})
    sealed = (
        await conn.execute(text("SELECT sealed FROM hotlist.hit_fact_days WHERE day = :d"), {"d": day})
    ).scalar_one_or_none()
    if sealed:
        return False
    s, e = _bounds(day)
    await conn.execute(text("DELETE FROM hotlist.hit_facts WHERE day = :d"), {"d": day})
    await conn.execute(
        text(
            f"INSERT INTO hotlist.hit_facts (day, agency, unit, category, list_name, covert, hits, outcomes) {_GROUPED}"
        ),
        {"s": s, "e": e, "sealed": [], "agency": None},
    )
    await conn.execute(
        text(
            "INSERT INTO hotlist.hit_fact_days (day, written_at, sealed) VALUES (:d, now(), :seal) "
            "ON CONFLICT (day) DO UPDATE SET written_at = now(), sealed = EXCLUDED.sealed"
        ),
        {"d": day, "seal": seal},
    )
    return True


async def days_with_hits(conn: Any, before: datetime) -> list[date]:
    rows = await conn.execute(
        text(f"SELECT DISTINCT ({_AT} AT TIME ZONE 'UTC')::date FROM hotlist.hits h WHERE {_AT} < :b"), {"b": before}
    )
    return sorted(r[0] for r in rows)


async def seal_due(engine: AsyncEngine, cutoff: datetime) -> int:
    """The purge's first step: every day before `cutoff` that still has hits gets its final facts."""
    async with engine.connect() as conn:
        days = await days_with_hits(conn, cutoff)
    n = 0
    for day in days:
        async with engine.begin() as conn:
            n += int(await write_day(conn, day, seal=True))
    return n


async def write_pending(engine: AsyncEngine, at: datetime | None = None) -> list[date]:
    """The end-of-day writer: finished days with hits and no facts yet."""
    today = (at or datetime.now(UTC)).astimezone(UTC).date()
    async with engine.connect() as conn:
        done = set((await conn.execute(text("SELECT day FROM hotlist.hit_fact_days"))).scalars())
        days = await days_with_hits(conn, _bounds(today)[0])
    written = []
    for day in days:
        if day not in done:
            async with engine.begin() as conn:
                if await write_day(conn, day, seal=False):
                    written.append(day)
    return written


@dataclass
class HitFactRow:
    day: str
    agency: str
    unit: str
    category: str
    list_name: str
    covert: bool
    hits: int


@dataclass
class PeriodFacts:
    rows: list[HitFactRow]
    outcomes: dict[str, int]  # dispositions in force by outcome over the period


async def period(session: Any, start: datetime, end: datetime, *, agency: str | None = None) -> PeriodFacts:
    """The hit facts of [start, end): sealed days from the facts table, every other day counted live; outcomes are
    summed in PostgreSQL. `agency`: that custodian agency's hits only (None: every agency's)."""
    sealed = list(
        (
            await session.execute(
                text("SELECT day FROM hotlist.hit_fact_days WHERE sealed AND day >= :sd AND day < :ed"),
                {"sd": start.astimezone(UTC).date(), "ed": end.astimezone(UTC).date() + timedelta(days=1)},
            )
        ).scalars()
    )
    days = {"days": [d for d in sealed if start <= _bounds(d)[0] < end], "agency": agency}
    kept = (
        await session.execute(
            text(
                "SELECT day, agency, unit, category, list_name, covert, hits FROM hotlist.hit_facts "
                "WHERE day = ANY(CAST(:days AS date[])) "
                "AND (CAST(:agency AS text) IS NULL OR agency = CAST(:agency AS text))"
            ),
            days,
        )
    ).all()
    outcomes: dict[str, int] = {
        k: int(v)
        for k, v in (
            await session.execute(
                text(
                    "SELECT x.k, sum(CAST(x.v AS bigint)) FROM hotlist.hit_facts f, "
                    "jsonb_each_text(f.outcomes) AS x(k, v) WHERE f.day = ANY(CAST(:days AS date[])) "
                    "AND (CAST(:agency AS text) IS NULL OR f.agency = CAST(:agency AS text)) GROUP BY x.k"
                ),
                days,
            )
        ).all()
    }
    live = (await session.execute(text(_GROUPED), {"s": start, "e": end, "sealed": sealed, "agency": agency})).all()
    for r in live:
        for k, v in r[7].items():
            outcomes[k] = outcomes.get(k, 0) + int(v)
    rows = [
        HitFactRow(
            day=r[0].isoformat(),
            agency=r[1],
            unit=r[2],
            category=r[3],
            list_name=r[4],
            covert=bool(r[5]),
            hits=int(r[6]),
        )
        for r in [*kept, *live]
    ]
    return PeriodFacts(rows=rows, outcomes=dict(sorted(outcomes.items())))

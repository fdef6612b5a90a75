"""Group commit for reads: rows from concurrent requests go into one INSERT and one transaction, and each request
is answered only after that transaction commits. One fsync'd commit per read tops out near 300/s here
(/work/shared/FACTS.md); a commit per batch does not.

Day partitions of `ingest.reads` are created here on demand, before the batch that needs them.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import and_, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.ingest import direct
from services.ingest.batching import Batcher, once_more_if_dropped
from services.ingest.inflight import InFlight
from services.ingest.models import Read
from shared.errors import AppError, Conflict, Unavailable, Unprocessable, is_poison
from shared.settings import Settings

log = structlog.get_logger(__name__)

READS = Read.__table__  # type: ignore[attr-defined]
_KEY = ("agency", "unit", "client_read_id", "captured_at")


def partition_name(day: date) -> str:
    return f"reads_{day:%Y%m%d}"


_PARTITION = re.compile(r"^reads_(\d{8})$")


async def partition_days(engine: AsyncEngine) -> list[date]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
                "WHERE n.nspname = 'ingest' AND p.relname = 'reads'"
            )
        )
        days = []
        for (name,) in rows:
            m = _PARTITION.match(name)
            if m:
                days.append(datetime.strptime(m.group(1), "%Y%m%d").date())
    return sorted(days)


def capture_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


async def ensure_partition(conn: AsyncConnection, day: date) -> None:
    """Create the day's partition unless it exists; an advisory lock keeps two processes from racing."""
    name = partition_name(day)
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('ingest.reads partitions'))"))
    exists = (await conn.execute(text("SELECT to_regclass(:n)"), {"n": f"ingest.{name}"})).scalar()
    if exists is None:
        # Through the owner's function: the service's role owns no table, so it cannot make one itself.
        await conn.execute(text("SELECT ingest.create_reads_partition(:day)"), {"day": day})


def batch_engine(settings: Settings, *, pool_size: int = 4, custom_plans: bool = True) -> AsyncEngine:
    """A batchers' own small pool, without pre-ping. The lookups' statements are planned at each execution (~0.3 ms,
    once per batch): a prepared statement's generic plan is made once per connection and kept, and the lookup's,
    made while the day's partition was nearly empty, read it through the capture-time index, filtering every read of
    the day, for as long as the connection lived (auto_explain in the bench's sequence: 1.3-1.9 ms per lookup after
    12 k reads, 0.03 ms planned afresh; docs/benchmarks-18.md).

    `custom_plans=False`: the group commit's pool, where PostgreSQL chooses (its default): the INSERT's plan does
    not turn on the day's reads (rows from arrays, the shift by primary key; tests/ingest/test_commit_plan.py), a
    kept plan is remade when the shifts' statistics change, and planning it afresh for every commit cost 0.25-0.3 ms
    of PostgreSQL CPU per batch (0.72 against 0.47 ms per six-read commit on one connection, issue 31), a cost each
    read shares with fewer others when two instances split the reads."""
    assert settings.database_url
    server_settings = {"plan_cache_mode": "force_custom_plan"} if custom_plans else {}
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_timeout=settings.db_connect_timeout_s,
        connect_args={"timeout": settings.db_connect_timeout_s, "server_settings": server_settings},
    )


@dataclass(frozen=True)
class WriteOutcome:
    inserted: bool
    row: dict[str, Any]  # the stored row: ours, or the first one when this was a duplicate


@dataclass(frozen=True)
class _Pending:
    row: dict[str, Any]
    require_active: bool


class ReadWriter:
    """Group commit: the reads waiting while the previous batch commits are stored by one statement, and each is
    answered only once that statement has committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 256,
        flushers: int = 1,
        inflight: InFlight | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self._known_days: set[date] = set()
        self._batcher: Batcher[_Pending, WriteOutcome] = Batcher(
            "read-writer",
            self._store,
            max_batch=max_batch,
            flushers=flushers,
            failed=_refusal,
            inflight=inflight,
            linger_s=linger_s,
        )

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()

    async def submit(self, row: dict[str, Any], *, require_active: bool) -> WriteOutcome:
        """Store a read; returns once committed. Conflict: its unit went offline; Unavailable: an outage."""
        return await self._batcher.call(_Pending(row, require_active))

    async def _store(self, batch: list[_Pending]) -> list[WriteOutcome | Exception]:
        try:
            return await once_more_if_dropped(self._flush, batch)
        except Exception as exc:
            if len(batch) == 1 or not _poisoned(exc):
                _log_failure(exc, len(batch))
                raise
        # Not an outage: one read's values failed the batch. Each alone, so the others are stored.
        log.warning("read_batch_split", reads=len(batch))
        out: list[WriteOutcome | Exception] = []
        for item in batch:
            try:
                out += await once_more_if_dropped(self._flush, [item])
            except Exception as exc:  # noqa: BLE001 - this read's refusal (or an outage), answered to it alone
                _log_failure(exc, 1)
                out.append(exc)
        return out

    async def ensure_days(self, days: set[date]) -> None:
        for day in sorted(days - self._known_days):
            async with self.engine.begin() as conn:
                await ensure_partition(conn, day)
            self._known_days.add(day)

    async def _flush(self, batch: list[_Pending]) -> list[WriteOutcome | Exception]:
        await self.ensure_days({capture_day(item.row["captured_at"]) for item in batch})
        # One statement per distinct key (a batch may carry the same retried read twice).
        unique: dict[tuple[Any, ...], _Pending] = {}
        for item in batch:
            unique.setdefault(tuple(item.row[k] for k in _KEY), item)
        names = [c.name for c in READS.c if c.name in batch[0].row]
        params: dict[str, Any] = {
            f"c_{name}": [_param(name, item.row.get(name)) for item in unique.values()] for name in names
        }
        params["must_be_open"] = [item.require_active for item in unique.values()]
        params["open_ids"] = list({item.row["shift_id"] for item in batch if item.require_active})
        # Outside a transaction block: this one statement is the transaction (one round trip, not BEGIN, shift
        # check, INSERT and COMMIT), committed (synchronous_commit) before it returns.
        inserted: set[tuple[Any, Any]] = set()
        open_ids: set[uuid.UUID] = set()
        for r in await direct.fetch(self.engine, _insert_sql(tuple(names)), params):
            if r["inserted"]:
                inserted.add((r["id"], r["captured_at"]))
            else:
                open_ids.add(r["id"])
        missing = [
            key
            for key, item in unique.items()
            if (item.row["id"], item.row["captured_at"]) not in inserted
            and (not item.require_active or item.row["shift_id"] in open_ids)
        ]
        existing: dict[tuple[Any, ...], dict[str, Any]] = {}
        if missing:  # a retry racing its first copy: rare
            cols = [READS.c[k] for k in _KEY]
            async with self.engine.connect() as conn:
                rows = await conn.execute(select(READS).where(and_(tuple_(*cols).in_(missing))))
                existing = {tuple(r._mapping[k] for k in _KEY): dict(r._mapping) for r in rows}
        # Committed: an answer for every request of the batch.
        out: list[WriteOutcome | Exception] = []
        for item in batch:
            key = tuple(item.row[k] for k in _KEY)
            first = unique[key]
            if item.require_active and item.row["shift_id"] not in open_ids:
                out.append(Conflict(f"unit {item.row['unit']} is offline: its shift has ended"))
            elif first is item and (item.row["id"], item.row["captured_at"]) in inserted:
                out.append(WriteOutcome(True, item.row))
            elif key in existing:
                out.append(WriteOutcome(False, existing[key]))
            elif (first.row["id"], first.row["captured_at"]) in inserted:
                out.append(WriteOutcome(False, first.row))
            else:
                out.append(Unavailable("read neither stored nor found, retry"))
        return out


def _param(name: str, value: Any) -> Any:
    return json.dumps(value) if name == "hits" else value


@functools.lru_cache(maxsize=8)
def _insert_sql(names: tuple[str, ...]) -> str:
    """The batch's rows as one array per column: the shift check and the INSERT in one statement. No conflict
    target: a racing retry collides on the primary key and the client key at once, and a conflict on either must
    skip the row, not fail the whole batch. Rows (inserted, id, captured_at): the reads inserted, then the open
    shifts (inserted false)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"CAST(:c_{n} AS {'TEXT' if n == 'hits' else READS.c[n].type.compile(dialect=dialect)}[])" for n in names
    )
    picked = ", ".join(f"t.{n}::jsonb" if n == "hits" else f"t.{n}" for n in names)
    return (
        "WITH open AS (SELECT id FROM ingest.shifts WHERE id = ANY(CAST(:open_ids AS UUID[])) "
        "AND ended_at IS NULL AND expires_at > now()), "
        f"ins AS (INSERT INTO ingest.reads ({', '.join(names)}) SELECT {picked} "
        f"FROM unnest({arrays}, CAST(:must_be_open AS BOOLEAN[])) AS t({', '.join(names)}, must_be_open) "
        "WHERE NOT t.must_be_open OR t.shift_id IN (SELECT id FROM open) "
        "ON CONFLICT DO NOTHING RETURNING id, captured_at, agency), "
        # 13.824 subd. 7(b), data entered: per agency, one chained audit entry naming the reads this statement
        # stored, their count and Merkle root (shared/merkle.py proves a read's place), committed with them.
        f"aud AS ({audit_reads_stored('ingest.writer')}) "
        "SELECT true AS inserted, id, captured_at FROM ins UNION ALL SELECT false, id, NULL FROM open"
    )


def audit_reads_stored(actor: str) -> str:
    """The audit entry per agency of one group commit (or one agents' import round) for the reads of the CTE `ins`
    (id, agency): their ids, count and Merkle root (audit.merkle_root, the tree of shared/merkle.py)."""
    return (
        "INSERT INTO audit.audit_log (id, service, actor, actor_roles, agency, action, object_type, object_ids, "
        f"outcome, record_count, details) SELECT gen_random_uuid(), 'ingest', '{actor}', '{{}}', agency, "
        "'reads.store', 'read', array_agg(id::text ORDER BY id::text), 'ok', count(*), "
        "jsonb_build_object('merkle_root', audit.merkle_root(array_agg(id::text))) FROM ins GROUP BY agency"
    )


def _poisoned(exc: Exception) -> bool:
    """A value in the batch failed it (PostgreSQL refused it, or it could not be converted), not an outage: the same
    reads would fail the same way every time."""
    if isinstance(exc, DBAPIError):
        return is_poison(exc)
    return isinstance(exc, ValueError | OverflowError | TypeError)


def _log_failure(exc: Exception, reads: int) -> None:
    if _poisoned(exc):
        log.warning("read_refused_by_database", reads=reads, error=repr(exc)[:300])
    else:
        log.warning("read_batch_failed", reads=reads, error=repr(exc))


def _refusal(exc: Exception) -> BaseException:
    """What a request is answered when its batch (or its read alone) failed."""
    if isinstance(exc, AppError):  # answered as decided: the unit went offline, the read was not found
        return exc
    if not _poisoned(exc):
        return Unavailable("database unavailable, retry later")
    # The same read fails every time: a 422 tells the car to stop retrying it (a 503 would loop forever).
    return Unprocessable("the read cannot be stored: a value is out of range or holds a control character")


@dataclass(frozen=True)
class _Lookup:
    key: tuple[str, str, str]  # agency, unit, client_read_id
    captured_at: datetime
    plate: str | None  # the car's plate: its Safe at Home check rides along


# The idempotency lookup: one probe of the client-key index per key. A plain join let the prepared statement's
# generic plan (the window's bounds unknown, so guessed narrow) hash-join the keys with every read of the window,
# read through the capture-time index: ~10 ms of PostgreSQL CPU per lookup at 50 k reads a day, growing with the
# day's reads. OFFSET 0 keeps the per-key subquery apart, so it is a nested loop of index probes whatever the plan.
EXISTING_SQL = (
    "SELECT r.* FROM unnest(CAST(:agencies AS text[]), CAST(:units AS text[]), CAST(:ids AS text[])) "
    "AS k(agency, unit, client_read_id) CROSS JOIN LATERAL (SELECT * FROM ingest.reads x "
    "WHERE x.agency = k.agency AND x.unit = k.unit AND x.client_read_id = k.client_read_id "
    "AND x.captured_at BETWEEN :lo AND :hi OFFSET 0) r"
)
# The lookup and the cars' plates' Safe at Home check in one round trip: the one row of the check (its plates and
# agencies as arrays) beside each stored read found, or alone with the read's columns null when none is.
LOOKUP_SQL = (
    "SELECT p.protected_plates, p.protected_agencies, f.* FROM (SELECT array_agg(plate) AS protected_plates, "
    "array_agg(agency) AS protected_agencies FROM ingest.protected_plates "
    "WHERE plate = ANY(CAST(:plates AS text[]))) p "
    f"LEFT JOIN LATERAL ({EXISTING_SQL}) f ON true"
)
_CHECK_COLUMNS = ("protected_plates", "protected_agencies")


class ExistingReads:
    """Finds already-stored reads by client id for many requests in one query: a query (and a pooled connection)
    per request would exhaust the pool at a thousand reads a second."""

    def __init__(
        self, engine: AsyncEngine, *, max_batch: int = 256, inflight: InFlight | None = None, linger_s: float = 0.0
    ) -> None:
        self.engine = engine
        self._batcher: Batcher[_Lookup, tuple[list[dict[str, Any]], bool]] = Batcher(
            "existing-reads",
            self._answers,
            max_batch=max_batch,
            failed=_outage,
            inflight=inflight,
            linger_s=linger_s,
        )

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        await self._batcher.stop()

    async def near(
        self, agency: str, unit: str, client_read_id: str, at: datetime, plate: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Stored reads with this client id captured within a day of `at` (a few partitions at most), and whether
        `plate` is a Safe at Home plate for `agency`'s reads: asked in the same round trip, so that a read the car
        sent with its plate needs no separate check, and a participant's photo is never uploaded."""
        return await self._batcher.call(_Lookup((agency, unit, client_read_id), at, plate))

    async def _answers(self, batch: list[_Lookup]) -> list[tuple[list[dict[str, Any]], bool]]:
        try:
            found, protected = await once_more_if_dropped(self._query, batch)
        except Exception as exc:
            log.warning("existing_reads_failed", lookups=len(batch), error=repr(exc))
            raise
        return [
            (
                [r for r in found.get(i.key, []) if abs((r["captured_at"] - i.captured_at).total_seconds()) <= 86400],
                (i.plate, i.key[0]) in protected,
            )
            for i in batch
        ]

    async def _query(
        self, batch: list[_Lookup]
    ) -> tuple[dict[tuple[str, str, str], list[dict[str, Any]]], set[tuple[str, str]]]:
        lo = min(i.captured_at for i in batch) - timedelta(days=1)
        hi = max(i.captured_at for i in batch) + timedelta(days=1)
        keys = list({i.key for i in batch})
        params = {
            "agencies": [k[0] for k in keys],
            "units": [k[1] for k in keys],
            "ids": [k[2] for k in keys],
            "lo": lo,
            "hi": hi,
            "plates": sorted({i.plate for i in batch if i.plate}),
        }
        out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        protected: set[tuple[str, str]] = set()
        # Outside a transaction block: a read-only probe needs no BEGIN/ROLLBACK round trips.
        for r in await direct.fetch(self.engine, LOOKUP_SQL, params):
            row = dict(r)
            plates, agencies = (row.pop(c) for c in _CHECK_COLUMNS)
            protected.update(zip(plates or (), agencies or (), strict=True))
            if row["id"] is not None:
                out.setdefault((row["agency"], row["unit"], row["client_read_id"]), []).append(row)
        return out, protected


def _outage(exc: Exception) -> BaseException:
    return Unavailable("database unavailable, retry later")

"""The retention purge of ingest's data (Minn. Stat. 13.824 subd. 3) and the check that proves it ran.

Reads live in day partitions (`ingest.reads_YYYYMMDD`) and their photos under `reads/YYYY/MM/DD/`. A day is due once
its first moment is `retention_days` old (so nothing outlives the period by more than the purge interval). For each
due day, oldest first:

1. the day's objects are deleted, except those of held reads (listed by prefix, so orphans go too);
2. in one transaction: the partition is dropped (no held read) or emptied of its unheld rows (held reads stay where
   every search finds them), the day's hit events go, and the run's destruction record is updated.

Orphan photos (a worker killed between a photo's upload and its read's commit; the car's retry stores another) are
looked for in the days not yet due (the last `retention_object_lookback_days`): an object that no read nor held read
refers to and that is older than `purge_orphan_grace_s` goes, counted apart (`orphans_destroyed`). The grace is what
keeps an in-flight read's photo: it is written before its row commits.

Objects go before rows: a run interrupted between the two finds the rows on the next run and finishes; a run
interrupted after 2 finds nothing left of that day. Running twice destroys nothing more. One purge at a time
(an advisory lock); a dry run counts what would go and writes nothing but its audit entry.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import facts
from services.ingest.metrics import ORPHANS_REMOVED
from services.ingest.retention_models import ACTIVE_HELD_READS, PurgeRun
from services.ingest.writer import partition_days
from shared.audit import record
from shared.settings import Settings
from shared.storage import ObjectStore

log = structlog.get_logger(__name__)

PURGE_LOCK = "ingest.retention purge"


def now_utc() -> datetime:
    return datetime.now(UTC)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def last_due_day(settings: Settings, at: datetime) -> date:
    """The newest day whose first moment is `retention_days` old: it and every day before it are due."""
    return (at - timedelta(days=settings.retention_days)).astimezone(UTC).date()


def day_prefix(day: date) -> str:
    return f"reads/{day:%Y/%m/%d}/"


@dataclass
class DayResult:
    day: str
    reads_destroyed: int = 0
    reads_kept_held: int = 0
    objects_destroyed: int = 0
    objects_kept_held: int = 0
    partition_dropped: bool = False


@dataclass
class PurgeReport:
    dry_run: bool
    cutoff: datetime
    retention_days: int
    run_id: str | None = None
    status: str = "finished"  # finished | busy | partial (stopped after max_days)
    reads_destroyed: int = 0
    objects_destroyed: int = 0
    stream_events_destroyed: int = 0
    agent_records_destroyed: int = 0
    partitions_dropped: int = 0
    reads_kept_held: int = 0
    objects_kept_held: int = 0
    orphans_destroyed: int = 0
    days: list[DayResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat()
        return out


async def held_in_day(conn: Any, day: date) -> tuple[set[uuid.UUID], set[str]]:
    """Read ids and object keys under an active hold, captured that day."""
    rows = await conn.execute(
        text(
            "SELECT hr.read_id, hr.image_key, hr.crop_key FROM ingest.hold_reads hr "
            "JOIN ingest.holds h ON h.id = hr.hold_id "
            "WHERE h.released_at IS NULL AND hr.captured_at >= :s AND hr.captured_at < :e"
        ),
        {"s": day_start(day), "e": day_start(day + timedelta(days=1))},
    )
    ids: set[uuid.UUID] = set()
    keys: set[str] = set()
    for read_id, image_key, crop_key in rows:
        ids.add(read_id)
        keys.update(k for k in (image_key, crop_key) if k)
    return ids, keys


async def delete_day_objects(engine: AsyncEngine, store: ObjectStore, day: date, *, dry_run: bool = False) -> DayResult:
    """Step 1 of a day: its objects, except held ones."""
    async with engine.connect() as conn:
        _, held_keys = await held_in_day(conn, day)
    keys = await store.list(day_prefix(day))
    doomed = [k for k in keys if k not in held_keys]
    if doomed and not dry_run:
        await store.delete_keys(doomed)
    return DayResult(day=day.isoformat(), objects_destroyed=len(doomed), objects_kept_held=len(keys) - len(doomed))


async def _purge_rows(conn: Any, day: date, exists: bool, *, dry_run: bool, result: DayResult) -> None:
    """Step 2 of a day, inside the caller's transaction."""
    held, _ = await held_in_day(conn, day)
    if not exists:
        return
    if not dry_run:
        # The day's counts outlive its reads: the log of use and the audit read them from here on.
        await facts.write_day(conn, day, seal=True)
    name = f"ingest.reads_{day:%Y%m%d}"
    total = int((await conn.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one())
    kept = (
        int(
            (
                await conn.execute(text(f"SELECT count(*) FROM {name} WHERE id = ANY(:ids)"), {"ids": list(held)})
            ).scalar_one()
        )
        if held
        else 0
    )
    result.reads_kept_held, result.reads_destroyed = kept, total - kept
    if dry_run:
        result.partition_dropped = kept == 0
        return
    if kept == 0:
        await conn.execute(text("SELECT ingest.drop_reads_partition(:day)"), {"day": day})
        result.partition_dropped = True
    else:
        await conn.execute(text(f"DELETE FROM {name} WHERE NOT (id = ANY(:ids))"), {"ids": list(held)})


def _read_id_of(key: str) -> uuid.UUID | None:
    """`reads/YYYY/MM/DD/<read id>.<...>`: the read a photo was written for (None for a name of another shape)."""
    try:
        return uuid.UUID(key.rsplit("/", 1)[-1].split(".", 1)[0])
    except ValueError:
        return None


async def delete_orphans(
    engine: AsyncEngine, store: ObjectStore, settings: Settings, last_due: date, at: datetime, *, dry_run: bool
) -> int:
    """Photos of the days not yet due that no read (nor held read) refers to, once older than the grace. Reads of
    every agency are asked: the key carries no agency, and a photo any read refers to stays."""
    grace_cut = at - timedelta(seconds=settings.purge_orphan_grace_s)
    newest = at.astimezone(UTC).date() + timedelta(days=1)  # a car's clock a little ahead
    days = [newest - timedelta(days=i) for i in range(settings.retention_object_lookback_days + 1)]
    total = 0
    for day in (d for d in days if d > last_due):
        aged = [o.key for o in await store.list_objects(day_prefix(day)) if o.last_modified < grace_cut]
        if not aged:
            continue
        ids = {i for i in map(_read_id_of, aged) if i is not None}
        async with engine.connect() as conn:
            _, referenced = await held_in_day(conn, day)
            rows = await conn.execute(
                text(
                    "SELECT image_key, crop_key FROM ingest.reads WHERE id = ANY(:ids) "
                    "AND captured_at >= :s AND captured_at < :e"
                ),
                {"ids": list(ids), "s": day_start(day), "e": day_start(day + timedelta(days=1))},
            )
            referenced.update(k for row in rows for k in row if k)
        orphans = [k for k in aged if k not in referenced]
        if orphans and not dry_run:
            await store.delete_keys(orphans)
            log.warning("orphan_photos_removed", day=day.isoformat(), count=len(orphans))
        total += len(orphans)
    return total


async def _candidate_days(engine: AsyncEngine, settings: Settings, last_due: date) -> tuple[list[date], set[date]]:
    parts = set(await partition_days(engine))
    lookback = {last_due - timedelta(days=i) for i in range(settings.retention_object_lookback_days)}
    return sorted({d for d in parts if d <= last_due} | lookback), parts


async def purge(
    engine: AsyncEngine,
    store: ObjectStore,
    settings: Settings,
    *,
    actor: str,
    trigger: str,
    dry_run: bool = False,
    at: datetime | None = None,
    max_days: int | None = None,
) -> PurgeReport:
    """Destroy what is past retention and not held. `max_days` stops after that many days (a large backlog can
    be spread over runs; the next run goes on where this one stopped)."""
    at = at or now_utc()
    last_due = last_due_day(settings, at)
    cutoff = day_start(last_due + timedelta(days=1))
    report = PurgeReport(dry_run=dry_run, cutoff=cutoff, retention_days=settings.retention_days)
    async with engine.connect() as lock_conn:
        got = (
            await lock_conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": PURGE_LOCK})
        ).scalar_one()
        await lock_conn.commit()
        if not got:
            report.status = "busy"
            return report
        try:
            await _purge_locked(engine, store, settings, report, actor, trigger, last_due, at, max_days)
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": PURGE_LOCK})
            await lock_conn.commit()
    return report


async def _purge_locked(
    engine: AsyncEngine,
    store: ObjectStore,
    settings: Settings,
    report: PurgeReport,
    actor: str,
    trigger: str,
    last_due: date,
    at: datetime,
    max_days: int | None,
) -> None:
    dry_run = report.dry_run
    days, parts = await _candidate_days(engine, settings, last_due)
    run_id: uuid.UUID | None = None
    if not dry_run:
        run_id = uuid.uuid4()
        report.run_id = str(run_id)
        async with engine.begin() as conn:
            await conn.execute(
                PurgeRun.__table__.insert().values(  # type: ignore[attr-defined]
                    id=run_id,
                    # When it ran, not the reference time `at` (a test's purge "an hour later" must not look like
                    # a purge that finished in the future to the late-purge check).
                    started_at=now_utc(),
                    trigger=trigger,
                    actor=actor,
                    dry_run=False,
                    status="running",
                    retention_days=settings.retention_days,
                    cutoff=report.cutoff,
                    reads_destroyed=0,
                    objects_destroyed=0,
                    stream_events_destroyed=0,
                    partitions_dropped=0,
                    reads_kept_held=0,
                    objects_kept_held=0,
                    details={},
                )
            )
    done = 0
    try:
        for day in days:
            if max_days is not None and done >= max_days:
                report.status = "partial"
                break
            result = await delete_day_objects(engine, store, day, dry_run=dry_run)
            async with engine.begin() as conn:
                await _purge_rows(conn, day, day in parts, dry_run=dry_run, result=result)
                if not dry_run and run_id is not None:
                    await _add_to_run(conn, run_id, result)
            if result.reads_destroyed or result.objects_destroyed or result.reads_kept_held or result.objects_kept_held:
                report.days.append(result)
            report.reads_destroyed += result.reads_destroyed
            report.objects_destroyed += result.objects_destroyed
            report.reads_kept_held += result.reads_kept_held
            report.objects_kept_held += result.objects_kept_held
            report.partitions_dropped += int(result.partition_dropped)
            done += 1
        if not dry_run:
            # Safe at Home plates: reads stored since the request go at every run (services/ingest/subjects.py).
            from services.ingest.subjects import destroy_protected

            protected_reads, protected_objects = await destroy_protected(engine, store, settings)
            report.reads_destroyed += protected_reads
            report.objects_destroyed += protected_objects
        report.orphans_destroyed = await delete_orphans(engine, store, settings, last_due, at, dry_run=dry_run)
        if not dry_run:
            ORPHANS_REMOVED.inc(report.orphans_destroyed)
        async with engine.begin() as conn:
            report.stream_events_destroyed = await _purge_events(conn, report.cutoff, dry_run=dry_run)
            report.agent_records_destroyed = await _purge_agent_records(conn, report.cutoff, dry_run=dry_run)
            if not dry_run and run_id is not None:
                await conn.execute(
                    text(
                        "UPDATE ingest.purge_runs SET stream_events_destroyed = :n, orphans_destroyed = :o, "
                        "status = :st, finished_at = now(), details = CAST(:d AS jsonb) WHERE id = :id"
                    ),
                    {
                        "n": report.stream_events_destroyed,
                        "o": report.orphans_destroyed,
                        "st": report.status,
                        "id": run_id,
                        "d": _json(
                            {
                                "days": [asdict(d) for d in report.days],
                                "agent_records_destroyed": report.agent_records_destroyed,
                            }
                        ),
                    },
                )
            await _audit(conn, report, actor, trigger)
    except BaseException as exc:
        if run_id is not None:
            try:
                async with engine.begin() as conn:
                    await conn.execute(
                        text("UPDATE ingest.purge_runs SET status = 'failed', error = :e WHERE id = :id"),
                        {"e": repr(exc)[:500], "id": run_id},
                    )
            except Exception:  # noqa: BLE001 - the run's record stays 'running'; the next run finishes the work
                pass
        raise
    log.info("retention_purge", **{k: v for k, v in report.as_dict().items() if k != "days"})


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)


async def _add_to_run(conn: Any, run_id: uuid.UUID, r: DayResult) -> None:
    await conn.execute(
        text(
            "UPDATE ingest.purge_runs SET reads_destroyed = reads_destroyed + :rd, "
            "objects_destroyed = objects_destroyed + :od, reads_kept_held = reads_kept_held + :rk, "
            "objects_kept_held = objects_kept_held + :ok, partitions_dropped = partitions_dropped + :pd, "
            "first_day = coalesce(first_day, :day), last_day = :day WHERE id = :id"
        ),
        {
            "rd": r.reads_destroyed,
            "od": r.objects_destroyed,
            "rk": r.reads_kept_held,
            "ok": r.objects_kept_held,
            "pd": int(r.partition_dropped),
            "day": r.day,
            "id": run_id,
        },
    )


_ACTIVE_HELD = ACTIVE_HELD_READS


async def _purge_events(conn: Any, cutoff: datetime, *, dry_run: bool) -> int:
    where = f"coalesce(captured_at, created_at) < :cutoff AND (read_id IS NULL OR read_id NOT IN ({_ACTIVE_HELD}))"
    if dry_run:
        return int(
            (
                await conn.execute(text(f"SELECT count(*) FROM ingest.stream_events WHERE {where}"), {"cutoff": cutoff})
            ).scalar_one()
        )
    result = await conn.execute(text(f"DELETE FROM ingest.stream_events WHERE {where}"), {"cutoff": cutoff})
    return int(result.rowcount or 0)


# What camera agents said about a read (plate, candidates, corners) and the posts that never became reads (raw
# bodies with plates): ALPR data too, so they follow the reads' clock. Agent activity intervals are the log of
# use's evidence, like shifts, and stay.
_AGENT_RECORDS = (
    ("ingest.agent_reads", "captured_at < :cutoff AND read_id NOT IN ({held})"),
    ("ingest.agent_read_keys", "captured_at < :cutoff AND read_id NOT IN ({held})"),
    # Aged from capture (an old capture posted late goes with its day); a body that does not parse, from receipt.
    ("ingest.agent_quarantine", "coalesce(captured_at, received_at) < :cutoff"),
)


async def _purge_agent_records(conn: Any, cutoff: datetime, *, dry_run: bool) -> int:
    total = 0
    for table, where in _AGENT_RECORDS:
        condition = where.format(held=_ACTIVE_HELD)
        if dry_run:
            query = f"SELECT count(*) FROM {table} WHERE {condition}"
            total += int((await conn.execute(text(query), {"cutoff": cutoff})).scalar_one())
        else:
            result = await conn.execute(text(f"DELETE FROM {table} WHERE {condition}"), {"cutoff": cutoff})
            total += int(result.rowcount or 0)
    return total


async def _audit(conn: Any, report: PurgeReport, actor: str, trigger: str) -> None:
    from sqlmodel.ext.asyncio.session import AsyncSession

    async with AsyncSession(bind=conn) as session:
        await record(
            session,
            service="ingest",
            action="retention.purge_dry_run" if report.dry_run else "retention.purge",
            actor=actor,
            object_type="purge_run",
            object_ids=[report.run_id] if report.run_id else [],
            record_count=report.reads_destroyed,
            details={
                "trigger": trigger,
                "cutoff": report.cutoff.isoformat(),
                "reads_destroyed": report.reads_destroyed,
                "objects_destroyed": report.objects_destroyed,
                "stream_events_destroyed": report.stream_events_destroyed,
                "reads_kept_held": report.reads_kept_held,
                "objects_kept_held": report.objects_kept_held,
                "orphans_destroyed": report.orphans_destroyed,
                "status": report.status,
            },
        )


# ---- the retention check ------------------------------------------------------------------------------------


async def check(
    engine: AsyncEngine,
    store: ObjectStore,
    settings: Settings,
    *,
    at: datetime | None = None,
    agency: str | None = None,
) -> dict[str, Any]:
    """Violations: reads, hit events or objects older than the period and not held. `agency`: that custodian's
    reads and events only; agents' records and objects (keys name no agency) are the shared system's."""
    mine = "(CAST(:agency AS text) IS NULL OR coalesce(agency, '') = CAST(:agency AS text))"
    at = at or now_utc()
    limit = at - timedelta(days=settings.retention_days)
    async with engine.connect() as conn:
        reads = (
            await conn.execute(
                text(
                    "SELECT count(*), min(captured_at) FROM ingest.reads "
                    f"WHERE captured_at < :limit AND id NOT IN ({_ACTIVE_HELD}) AND {mine}"
                ),
                {"limit": limit, "agency": agency},
            )
        ).one()
        events = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM ingest.stream_events WHERE captured_at < :limit "
                    f"AND (read_id IS NULL OR read_id NOT IN ({_ACTIVE_HELD})) AND {mine}"
                ),
                {"limit": limit, "agency": agency},
            )
        ).scalar_one()
        agent_records = 0
        for table, where in _AGENT_RECORDS:
            condition = where.format(held=_ACTIVE_HELD).replace(":cutoff", ":limit")
            query = f"SELECT count(*) FROM {table} WHERE {condition}"
            agent_records += int((await conn.execute(text(query), {"limit": limit})).scalar_one())
        held_reads = (
            await conn.execute(
                text(
                    f"SELECT count(*) FROM ingest.reads WHERE captured_at < :limit AND id IN ({_ACTIVE_HELD}) "
                    f"AND {mine}"
                ),
                {"limit": limit, "agency": agency},
            )
        ).scalar_one()
    # Objects: days wholly older than the period (a key carries its day, not its time).
    newest_full_day = limit.date() - timedelta(days=1)
    parts = [d for d in await partition_days(engine) if d <= newest_full_day]
    days = sorted(
        {newest_full_day - timedelta(days=i) for i in range(settings.retention_object_lookback_days)} | set(parts)
    )
    overdue_objects: list[str] = []
    for day in days:
        keys = await store.list(day_prefix(day))
        if not keys:
            continue
        async with engine.connect() as conn:
            _, held_keys = await held_in_day(conn, day)
        overdue_objects.extend(k for k in keys if k not in held_keys)
    violations = int(reads[0]) + int(events) + len(overdue_objects) + agent_records
    return {
        "ok": violations == 0,
        "checked_at": at.isoformat(),
        "agency": agency,  # None: every agency's; objects and agents' records are always the whole system's
        "retention_days": settings.retention_days,
        "limit": limit.isoformat(),
        "reads_overdue": int(reads[0]),
        "oldest_overdue_read": reads[1].isoformat() if reads[1] else None,
        "stream_events_overdue": int(events),
        "agent_records_overdue": agent_records,
        "objects_overdue": len(overdue_objects),
        "objects_overdue_sample": overdue_objects[:20],
        "reads_held_past_period": int(held_reads),
        "object_days_checked": len(days),
    }


async def scheduled_purge(engine: AsyncEngine, store: ObjectStore, settings: Settings) -> None:
    """The lifespan's daily (by default hourly: cheap when nothing is due) purge; the advisory lock keeps
    several workers and the CLI from running it twice at once."""
    import asyncio

    while True:
        try:
            await facts.write_pending(engine)  # the end of each day's facts, before anything is due
            await purge(engine, store, settings, actor="job:ingest-retention", trigger="schedule")
        except Exception as exc:  # noqa: BLE001 - an outage must not end the schedule; the next round finishes
            log.warning("retention_purge_failed", error=repr(exc))
        await asyncio.sleep(settings.retention_purge_interval_s)


# ---- is the purge running? (/readyz) ------------------------------------------------------------------------

_READY_CACHE_S = 60.0


async def purge_overdue(engine: AsyncEngine, settings: Settings, *, started_at: datetime) -> str | None:
    """A reason when the purge is off or late: no purge finished within `retention_purge_late_s` (counted from
    this process's start when none ever ran). None when it keeps up."""
    async with engine.connect() as conn:
        last = (
            await conn.execute(
                text("SELECT max(started_at) FROM ingest.purge_runs WHERE status IN ('finished', 'partial')")
            )
        ).scalar_one()
    now = now_utc()
    since = last or started_at
    late = (now - since).total_seconds() > settings.retention_purge_late_s
    if not settings.retention_purge_scheduled and late:
        return "the scheduled retention purge is off and no `alpr purge` finished in time: data may outlive 60 days"
    if late:
        return f"the retention purge is late: last finished {last.isoformat() if last else 'never'}"
    if not settings.retention_purge_scheduled:
        return "the scheduled retention purge is off: `alpr purge` must run at least daily"
    return None


class PurgeReadiness:
    """The ready check, cached a minute (/readyz is polled often); each degraded answer is logged as an alert."""

    __name__ = "retention_purge"

    def __init__(self) -> None:
        self.started_at = now_utc()
        self.checked_at: datetime | None = None
        self.reason: str | None = None

    async def __call__(self, app: Any) -> str | None:
        now = now_utc()
        if self.checked_at is None or (now - self.checked_at).total_seconds() > _READY_CACHE_S:
            import asyncio

            try:
                probe = purge_overdue(app.state.engine, app.state.settings, started_at=self.started_at)
                self.reason = await asyncio.wait_for(probe, 2.0)
            except Exception:  # noqa: BLE001 - PostgreSQL down is /readyz's own check; ask again next time
                return self.reason
            self.checked_at = now
            if self.reason:
                log.error("retention_purge_alert", reason=self.reason)
        return self.reason

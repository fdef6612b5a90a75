"""The purge of hits (Minn. Stat. 13.824 subd. 3): hits captured before the cutoff and not held go, with their
verifications and dispositions, in one transaction per batch (safe to interrupt: what is committed is gone, the rest
goes next run). The same day rule as ingest's purge: a day goes once its first moment is `retention_days` old.

A hit is held by a hold on hits here, or by a hold on its read in ingest (a case that keeps a read keeps the alert
raised on it): the purge asks ingest (`held_reads`) before deleting, and deletes nothing it could not ask about."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from services.hotlist import facts
from shared.audit import record
from shared.settings import Settings

log = structlog.get_logger(__name__)

BATCH = 5000
HeldReads = Callable[[list[str]], Awaitable[set[str]]]  # those of these read ids a hold in ingest keeps
ACTIVE_HELD = (
    "SELECT i.hit_id FROM hotlist.hit_hold_items i JOIN hotlist.hit_holds h ON h.id = i.hold_id "
    "WHERE h.released_at IS NULL"
)


def cutoff_for(settings: Settings, at: datetime) -> datetime:
    last_due = (at - timedelta(days=settings.retention_days)).astimezone(UTC).date() + timedelta(days=1)
    return datetime(last_due.year, last_due.month, last_due.day, tzinfo=UTC)


@dataclass
class HitPurgeReport:
    dry_run: bool
    cutoff: str
    run_id: str | None = None
    status: str = "finished"
    hits_destroyed: int = 0
    verifications_destroyed: int = 0
    dispositions_destroyed: int = 0
    hits_kept_held: int = 0  # by a hold on hits, or by a hold on their read (below)
    hits_kept_read_held: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_DUE = "coalesce(captured_at, created_at) < :cutoff"


async def purge(
    engine: AsyncEngine,
    settings: Settings,
    *,
    held_reads: HeldReads,
    actor: str,
    trigger: str,
    dry_run: bool = False,
    at: datetime | None = None,
    max_batches: int | None = None,
) -> HitPurgeReport:
    at = at or datetime.now(UTC)
    cutoff = cutoff_for(settings, at)
    report = HitPurgeReport(dry_run=dry_run, cutoff=cutoff.isoformat())
    p = {"cutoff": cutoff}
    async with engine.begin() as conn:
        report.hits_kept_held = int(
            (
                await conn.execute(text(f"SELECT count(*) FROM hotlist.hits WHERE {_DUE} AND id IN ({ACTIVE_HELD})"), p)
            ).scalar_one()
        )
        if dry_run:
            due = (
                await conn.execute(
                    text(f"SELECT id, read_id FROM hotlist.hits WHERE {_DUE} AND id NOT IN ({ACTIVE_HELD})"), p
                )
            ).all()
            doomed = await _not_read_held(due, held_reads, report)
            if doomed is None:
                await _audit(conn, report, actor, trigger)
                return report
            row = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM hotlist.hit_verifications WHERE hit_id = ANY(:ids)), "
                        "(SELECT count(*) FROM hotlist.hit_dispositions WHERE hit_id = ANY(:ids))"
                    ),
                    {"ids": doomed},
                )
            ).one()
            report.hits_destroyed = len(doomed)
            report.verifications_destroyed, report.dispositions_destroyed = map(int, row)
            await _audit(conn, report, actor, trigger)
            return report
    # The counts of every due day outlive its hits: the reports read them from the facts from here on.
    await facts.seal_due(engine, cutoff)
    run_id = uuid.uuid4()
    report.run_id = str(run_id)
    batches = 0
    kept: list[Any] = []  # due hits whose read is held in ingest: skipped by the next batches
    while True:
        if max_batches is not None and batches >= max_batches:
            report.status = "partial"
            break
        async with engine.begin() as conn:
            due = (
                await conn.execute(
                    text(
                        f"SELECT id, read_id FROM hotlist.hits WHERE {_DUE} AND id NOT IN ({ACTIVE_HELD}) "
                        "AND id <> ALL(:kept) ORDER BY id LIMIT :n FOR UPDATE"
                    ),
                    {**p, "n": BATCH, "kept": kept},
                )
            ).all()
            if not due:
                break
            ids = await _not_read_held(due, held_reads, report)
            if ids is None:
                break
            going = set(ids)
            kept += [r.id for r in due if r.id not in going]
            h, v, d = await destroy_hits(conn, ids)
            report.hits_destroyed += h
            report.verifications_destroyed += v
            report.dispositions_destroyed += d
            batches += 1
    report.hits_kept_held += report.hits_kept_read_held
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO hotlist.purge_runs (id, started_at, finished_at, trigger, actor, status, retention_days, "
                "cutoff, hits_destroyed, verifications_destroyed, dispositions_destroyed, hits_kept_held) VALUES "
                "(:id, :at, now(), :trigger, :actor, :status, :days, :cutoff, :h, :v, :d, :k)"
            ),
            {
                "id": run_id,
                "at": at,
                "trigger": trigger,
                "actor": actor,
                "status": report.status,
                "days": settings.retention_days,
                "cutoff": cutoff,
                "h": report.hits_destroyed,
                "v": report.verifications_destroyed,
                "d": report.dispositions_destroyed,
                "k": report.hits_kept_held,
            },
        )
        await _audit(conn, report, actor, trigger)
    log.info("hit_purge", **report.as_dict())
    return report


async def destroy_hits(conn: Any, ids: list[Any]) -> tuple[int, int, int]:
    """Delete these hits with their verifications and dispositions in `conn`'s transaction: (hits, verifications,
    dispositions) deleted. Verifications and dispositions are append-only; destruction the statute requires (this
    purge, a Safe at Home request) is the one writer allowed to delete them, and says so in its transaction."""
    await conn.execute(text("SELECT set_config('alpr.retention_purge', 'on', true)"))
    v = await conn.execute(text("DELETE FROM hotlist.hit_verifications WHERE hit_id = ANY(:ids)"), {"ids": ids})
    d = await conn.execute(text("DELETE FROM hotlist.hit_dispositions WHERE hit_id = ANY(:ids)"), {"ids": ids})
    h = await conn.execute(text("DELETE FROM hotlist.hits WHERE id = ANY(:ids)"), {"ids": ids})
    return int(h.rowcount or 0), int(v.rowcount or 0), int(d.rowcount or 0)


async def _not_read_held(due: list[Any], held_reads: HeldReads, report: HitPurgeReport) -> list[Any] | None:
    """The ids of `due` hits whose read no hold in ingest keeps; None when ingest could not say (nothing goes)."""
    try:
        held = await held_reads(sorted({r.read_id for r in due}))
    except Exception as exc:  # noqa: BLE001 - whatever failed, a hit we cannot clear is not destroyed
        report.status, report.error = "partial", f"ingest did not say which reads are held: {exc}"
        log.warning("hit_purge_stopped", error=repr(exc))
        return None
    report.hits_kept_read_held += sum(1 for r in due if r.read_id in held)
    return [r.id for r in due if r.read_id not in held]


async def _audit(conn: Any, report: HitPurgeReport, actor: str, trigger: str) -> None:
    async with AsyncSession(bind=conn) as session:
        await record(
            session,
            service="hotlist",
            action="retention.purge_dry_run" if report.dry_run else "retention.purge",
            actor=actor,
            object_type="purge_run",
            object_ids=[report.run_id] if report.run_id else [],
            record_count=report.hits_destroyed,
            details={"trigger": trigger, **report.as_dict()},
        )


async def check(
    engine: AsyncEngine,
    settings: Settings,
    *,
    held_reads: HeldReads,
    at: datetime | None = None,
    agency: str | None = None,
) -> dict[str, Any]:
    """Hits past the period that no hold keeps (on the hit, or on its read in ingest): none, after a purge.
    `agency`: that custodian's hits only (each agency's audit checks its own data)."""
    at = at or datetime.now(UTC)
    limit = at - timedelta(days=settings.retention_days)
    async with engine.connect() as conn:
        overdue = (
            await conn.execute(
                text(
                    "SELECT read_id, coalesce(captured_at, created_at) AS at FROM hotlist.hits "
                    f"WHERE coalesce(captured_at, created_at) < :limit AND id NOT IN ({ACTIVE_HELD}) "
                    "AND (CAST(:agency AS text) IS NULL OR custodian = :agency)"
                ),
                {"limit": limit, "agency": agency},
            )
        ).all()
    out: dict[str, Any] = {"limit": limit.isoformat(), "agency": agency}
    try:
        held = await held_reads(sorted({r.read_id for r in overdue})) if overdue else set()
    except Exception as exc:  # noqa: BLE001 - the check says it could not tell rather than guess
        return {**out, "ok": False, "hits_overdue": None, "oldest_overdue_hit": None, "error": repr(exc)}
    unheld = [r.at for r in overdue if r.read_id not in held]
    return {
        **out,
        "ok": not unheld,
        "hits_overdue": len(unheld),
        "oldest_overdue_hit": min(unheld).isoformat() if unheld else None,
    }


async def scheduled_purge(engine: AsyncEngine, settings: Settings, held_reads: HeldReads) -> None:
    while True:
        try:
            await facts.write_pending(engine)  # the end of each day's facts
            await purge(engine, settings, held_reads=held_reads, actor="job:hotlist-retention", trigger="schedule")
        except Exception as exc:  # noqa: BLE001 - keep the schedule through outages
            log.warning("hit_purge_failed", error=repr(exc))
        await asyncio.sleep(settings.retention_purge_interval_s)

"""The spool importer, run in ingest's lifespan: moves spooled agent posts into PostgreSQL exactly once.

Exactly once: the rows a batch produces and the spool offsets it reached commit in one transaction, so a crash or
an outage either keeps both or neither; read ids derive from the agent and the frame key, so even a lost offset
cannot store a read twice. One importer runs at a time across processes (a PostgreSQL advisory lock), and each batch
is applied in `epoch_time` order per agent. After the commit, fully imported sealed segments are deleted, and the
new reads are matched against the hot list (and read a second time by recognition when configured) outside the
import transaction; what fails there is handed to the ingest worker's pending-work retry.

By stage: the spool's files (`spool.py`), parsing (`parse.py`), the import round (here: the lock, the offsets, one
post at a time, the round's aggregates), storing each read (`rows.py`) and matching (`match.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.agents import backlog
from services.ingest.agents import spool as spool_files
from services.ingest.agents.match import MatchStage
from services.ingest.agents.parse import YIELD_EVERY, Malformed, ParsedPost, parse_all
from services.ingest.agents.registry import AgentInfo, Registry
from services.ingest.agents.rows import (
    AGENT_READ_NAMESPACE,
    AGENT_READS,
    QUARANTINE_BODY_MAX,
    Refused,
    RowStage,
    _at,
    _Batch,
    _is_outage,
    _Key,
    dispatch_unit,
    read_id_for,
)
from services.ingest.protected import protected_pairs
from services.ingest.service import IngestContext, delete_quietly
from services.ingest.writer import audit_reads_stored, capture_day
from shared.health import LoopHealth

__all__ = [
    "AGENT_READ_NAMESPACE",
    "AGENT_READS",
    "QUARANTINE_BODY_MAX",
    "AgentImporter",
    "Refused",
    "dispatch_unit",
    "read_id_for",
]

HANDOVER_S = 0.02  # between two rounds of a backlog, and between tries while another worker imports

log = structlog.get_logger(__name__)


class AgentImporter(RowStage, MatchStage):
    def __init__(self, ctx: IngestContext, registry: Registry, spool_dir: Path) -> None:
        self.ctx = ctx
        self.registry = registry
        self.dir = spool_dir
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.totals: Counter[str] = Counter()
        self.health = LoopHealth("agent_importer")
        self._match_again_at = 0.0  # after a failed match at import: left to `finish_reads` until then
        self.lock_busy = False  # another process held the import lock at the last try

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="agent-importer")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        interval = self.ctx.settings.ingest_agent_import_interval_s
        checked = 0.0
        while True:
            try:
                while True:
                    if not await self.run_once():
                        break
                    # A backlog: the next round after a short pause, in which another worker may take it. Whichever
                    # loop is least busy wakes first and takes the lock, so the import's CPU goes where the fewest
                    # posts wait for an answer (one worker kept every round, and its answers waited behind them).
                    await asyncio.sleep(HANDOVER_S)
                if not self.lock_busy or time.monotonic() - checked >= interval:
                    await self.finish_backlog()  # what an earlier round could not finish
                    await backlog.unmatched(self.ctx.engine, self.ctx.settings.ingest_agent_backlog_ready_max)
                    checked = time.monotonic()
                self.health.ok()
            except Exception as exc:  # noqa: BLE001 - an outage must not kill the importer; the spool keeps all
                self.health.failed(exc)
                self.lock_busy = False  # an outage: the next try after the interval, not at once
                log.warning("agent_import_round_failed", error=repr(exc))
            self.rounds += 1
            with contextlib.suppress(TimeoutError):
                # Another worker importing: ready to take the next round from it.
                await asyncio.wait_for(self._wake.wait(), HANDOVER_S if self.lock_busy else interval)
            self._wake.clear()

    # ---- one round ------------------------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Import one batch; returns how many spool records it consumed."""
        ctx = self.ctx
        batch = _Batch()
        async with ctx.engine.connect() as conn, conn.begin():
            locked = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext('ingest.agent_import'))"))
            self.lock_busy = not locked
            if not locked:
                return 0
            offsets = {
                r.segment: r.offset
                for r in await conn.execute(text('SELECT segment, "offset" FROM ingest.agent_spool_offsets'))
            }
            segments = await asyncio.to_thread(
                spool_files.read_pending, self.dir, offsets, max_bytes=ctx.settings.ingest_agent_import_bytes
            )
            records = [r for s in segments for r in s.records]
            if records:
                parsed = await parse_all(records)
                await ctx.writer.ensure_days(
                    {
                        capture_day(_at(pr.epoch_ms))
                        for _, post in parsed
                        if isinstance(post, ParsedPost)
                        for pr in post.reads
                        if _storable(pr.epoch_ms, ctx.settings.ingest_max_read_age_days)
                    }
                )
                parsed.sort(key=lambda rp: (rp[0].agent_id, _epoch_of(rp[1]), rp[0].received_ms))
                await self._prefetch(conn, parsed, batch)
                for i, (record, post) in enumerate(parsed):
                    if i and i % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                    try:
                        await self._apply(conn, record, post, batch)
                    except Exception as exc:
                        # One post that cannot be imported must not hold back every post behind it.
                        if _is_outage(exc):
                            raise
                        log.exception("agent_post_import_failed")
                        reason = f"could not be imported: {type(exc).__name__}"
                        await self._quarantine(conn, record, None, reason, batch)
                await self._flush_new(conn, batch)
                await self._flush_activity(conn, batch)
                await self._flush_drops(conn, batch)
                if batch.inserted:
                    # 13.824 subd. 7(b): the round's reads in the audit trail, per agency, committed with them.
                    await conn.execute(
                        text(
                            "WITH ins AS (SELECT r.id, r.agency FROM ingest.reads r JOIN unnest(CAST(:ids AS UUID[]), "
                            "CAST(:at AS TIMESTAMPTZ[])) AS t(id, at) ON r.id = t.id AND r.captured_at = t.at) "
                            + audit_reads_stored("ingest.agent_import")
                        ),
                        {"ids": [i for i, _ in batch.inserted], "at": [a for _, a in batch.inserted]},
                    )
            moved = [s for s in segments if s.end > offsets.get(s.name, 0)]
            if moved:
                await conn.execute(
                    text(
                        'INSERT INTO ingest.agent_spool_offsets (segment, "offset", updated_at) '
                        "VALUES (:segment, :offset, now()) "
                        'ON CONFLICT (segment) DO UPDATE SET "offset" = excluded."offset", updated_at = now()'
                    ),
                    [{"segment": s.name, "offset": s.end} for s in moved],
                )
        # Committed.
        for s in segments:
            if s.damaged:
                log.error("agent_spool_segment_damaged", segment=s.name, imported_to=s.end, size=s.size)
            if s.sealed and (s.end >= s.size or s.damaged):
                await self._drop_segment(s.name)
        await delete_quietly(self.ctx.store, batch.orphans)
        if batch.events:
            ctx.hub.notify()
        if records:
            stats = {
                "records": len(records),
                "stored": batch.stored,
                "merged": batch.merged,
                "duplicates": batch.duplicates,
                "quarantined": batch.quarantined,
                "heartbeats": batch.heartbeats,
                "destroyed_at_collection": batch.protected,
                "matched_at_import": batch.matched,
            }
            self.totals.update(stats)
            log.info("agent_posts_imported", **stats)
            await self.finish_backlog()
        return len(records)

    async def _prefetch(
        self,
        conn: AsyncConnection,
        parsed: list[tuple[spool_files.SpoolRecord, ParsedPost | Malformed]],
        batch: _Batch,
    ) -> None:
        """The round's stored keys and Safe at Home plates, in one query each (not one per read). A value PostgreSQL
        refuses among them (a NUL in a key) leaves `batch.known` None: each read then looks itself up, and only the
        poisoned one is quarantined."""
        reads = [(record.agent_id, pr) for record, post in parsed if isinstance(post, ParsedPost) for pr in post.reads]
        pairs = list({(agent_id, k) for agent_id, pr in reads for k in pr.keys})
        plates_seen = tuple({pr.plate for _, pr in reads if pr.plate})
        try:
            known: dict[tuple[uuid.UUID, str], _Key] = {}
            if pairs:
                async with conn.begin_nested():
                    rows = await conn.execute(
                        text(
                            "SELECT k.agent_id, k.key, k.read_id, k.captured_at FROM ingest.agent_read_keys k "
                            "JOIN unnest(CAST(:a AS uuid[]), CAST(:k AS text[])) AS w(agent_id, key) "
                            "ON k.agent_id = w.agent_id AND k.key = w.key"
                        ),
                        {"a": [a for a, _ in pairs], "k": [k for _, k in pairs]},
                    )
                known = {(r.agent_id, r.key): _Key(r.key, r.read_id, r.captured_at) for r in rows}
            batch.protected_plates = await protected_pairs(self.ctx.engine, plates_seen) if plates_seen else set()
            batch.known = known
        except DBAPIError as exc:
            if _is_outage(exc):
                raise
            batch.known, batch.protected_plates = None, set()

    async def _drop_segment(self, name: str) -> None:
        # The file first: a crash after it leaves a harmless offset row, never a file read again from 0.
        with contextlib.suppress(FileNotFoundError):
            spool_files.segment_path(self.dir, name, True).unlink()
        async with self.ctx.engine.begin() as conn:
            await conn.execute(text("DELETE FROM ingest.agent_spool_offsets WHERE segment = :s"), {"s": name})

    # ---- one record -----------------------------------------------------------------------------------------

    async def _agent(self, agent_id: uuid.UUID) -> AgentInfo | None:
        agent = self.registry.get(agent_id)
        if agent is None:
            with contextlib.suppress(Exception):
                await self.registry.refresh()
            agent = self.registry.get(agent_id)
        return agent

    async def _apply(
        self, conn: AsyncConnection, record: spool_files.SpoolRecord, post: ParsedPost | Malformed, batch: _Batch
    ) -> None:
        agent = await self._agent(record.agent_id)
        if agent is None:
            await self._quarantine(conn, record, None, "the agent is no longer registered", batch)
            return
        if isinstance(post, Malformed):
            await self._quarantine(conn, record, agent, str(post), batch)
            return
        batch.drops[agent.id].update(post.dropped)
        if post.epoch_ms is not None and _storable(post.epoch_ms, self.ctx.settings.ingest_max_read_age_days):
            batch.activity[agent.id].append(post.epoch_ms)
        if post.data_type == "heartbeat":
            batch.heartbeats += 1
            return
        if not post.reads:
            reason = "no plate in the post" + (f" ({'; '.join(post.notes[:5])})" if post.notes else "")
            await self._quarantine(conn, record, agent, reason, batch, data_type=post.data_type)
            return
        for pr in post.reads:
            if batch.known is not None and not any((agent.id, k) in batch.known for k in pr.keys):
                try:
                    await self._read(conn, agent, pr, batch, defer=(record, post.data_type))
                except Refused as exc:
                    await self._quarantine(conn, record, agent, str(exc), batch, data_type=post.data_type, post=post)
                continue
            await self._flush_new(conn, batch)  # what follows may merge into a read not inserted yet
            try:
                async with conn.begin_nested():
                    await self._read(conn, agent, pr, batch)
            except Refused as exc:
                await self._quarantine(conn, record, agent, str(exc), batch, data_type=post.data_type, post=post)
            except Exception as exc:
                # An outage fails the batch (retried whole); a value PostgreSQL refuses (a NUL in a frame key, a
                # number out of range...) must not block the spool behind it forever: that post goes to quarantine.
                if _is_outage(exc):
                    raise
                cause = exc.orig if isinstance(exc, DBAPIError) else exc
                reason = f"could not be stored: {type(cause).__name__}"
                await self._quarantine(conn, record, agent, reason, batch, data_type=post.data_type, post=post)

    # ---- per-batch aggregates -------------------------------------------------------------------------------

    async def _flush_activity(self, conn: AsyncConnection, batch: _Batch) -> None:
        gap = self.ctx.settings.ingest_agent_active_gap_s * 1000
        for agent_id, times in batch.activity.items():
            times.sort()
            spans: list[list[int]] = []
            for t in times:
                if spans and t - spans[-1][1] <= gap:
                    spans[-1][1] = max(spans[-1][1], t)
                else:
                    spans.append([t, t])
            for start_ms, end_ms in spans:
                start, end = _at(start_ms), _at(end_ms)
                slack = timedelta(milliseconds=gap)
                hit = await conn.scalar(
                    text(
                        "UPDATE ingest.agent_activity SET started_at = least(started_at, :s), "
                        "ended_at = greatest(ended_at, :e) WHERE id = (SELECT id FROM ingest.agent_activity "
                        "WHERE agent_id = :a AND started_at - CAST(:slack AS interval) <= :e "
                        "AND ended_at + CAST(:slack AS interval) >= :s "
                        "ORDER BY ended_at DESC LIMIT 1) RETURNING id"
                    ),
                    {"a": agent_id, "s": start, "e": end, "slack": slack},
                )
                if hit is None:
                    await conn.execute(
                        text("INSERT INTO ingest.agent_activity (agent_id, started_at, ended_at) VALUES (:a, :s, :e)"),
                        {"a": agent_id, "s": start, "e": end},
                    )

    async def _flush_drops(self, conn: AsyncConnection, batch: _Batch) -> None:
        rows = [
            {"a": agent_id, "f": name, "n": n} for agent_id, counts in batch.drops.items() for name, n in counts.items()
        ]
        if rows:
            await conn.execute(
                text(
                    "INSERT INTO ingest.agent_field_drops (agent_id, field, count) VALUES (:a, :f, :n) "
                    "ON CONFLICT (agent_id, field) DO UPDATE SET count = agent_field_drops.count + excluded.count"
                ),
                rows,
            )


def _epoch_of(post: ParsedPost | Malformed) -> int:
    return (post.epoch_ms or 0) if isinstance(post, ParsedPost) else 0


def _storable(epoch_ms: int, max_age_days: int) -> bool:
    # Partitions only for times that can be stored (others are quarantined without one).
    try:
        day: date = capture_day(_at(epoch_ms))
    except (OverflowError, OSError, ValueError):
        return False
    today = datetime.now(UTC).date()
    return today - timedelta(days=max_age_days + 1) <= day <= today + timedelta(days=1)

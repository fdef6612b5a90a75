"""The spool importer, run in ingest's lifespan: moves spooled agent posts into PostgreSQL exactly once.

Exactly once: the rows a batch produces and the spool offsets it reached commit in one transaction, so a crash or
an outage either keeps both or neither; read ids derive from the agent and the frame key, so even a lost offset
cannot store a read twice. One importer runs at a time across processes (a PostgreSQL advisory lock), and each batch
is applied in `epoch_time` order per agent. After the commit, fully imported sealed segments are deleted, and the
new reads are matched against the hot list (and read a second time by recognition when configured) outside the
import transaction; what fails there is handed to the ingest worker's pending-work retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import structlog
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.dialects.postgresql import dialect as _pg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.agents import backlog
from services.ingest.agents import spool as spool_files
from services.ingest.agents.models import AgentRead
from services.ingest.agents.parse import Malformed, ParsedPost, PlateRead, loads, parse, scrub
from services.ingest.agents.registry import AgentInfo, Registry
from services.ingest.clients import CallFailed
from services.ingest.images import CheckedImage
from services.ingest.protected import destroy_reads, protected_pairs
from services.ingest.service import (
    IngestContext,
    add_hit_events,
    apply_match,
    apply_recognition,
    delete_quietly,
    match,
    payload_of,
    protected_plates,
    recognize,
)
from services.ingest.writer import READS, capture_day
from shared import plates
from shared.errors import Unavailable, is_poison
from shared.health import LoopHealth
from shared.storage import StorageError

log = structlog.get_logger(__name__)

AGENT_READ_NAMESPACE = uuid.UUID("8f6b1e0a-2c57-4f7e-9a51-0d3c6e9b7a12")
AGENT_READS = AgentRead.__table__  # type: ignore[attr-defined]
QUARANTINE_BODY_MAX = 256 * 1024
_PG = _pg_dialect()


def dispatch_unit(agency: str) -> str:
    """The stream a fixed reader's hits go to: its agency's dispatch (fixed readers have no car)."""
    return f"dispatch-{agency}"


def read_id_for(agent_id: uuid.UUID, key: str) -> uuid.UUID:
    return uuid.uuid5(AGENT_READ_NAMESPACE, f"{agent_id}\x1f{key}")


class Refused(Exception):
    """This read cannot be stored (unit offline, time out of range): quarantined with the reason. A missing position
    is not a reason: such a read is stored without one (docs/ingest.md)."""


@dataclass
class _Batch:
    activity: dict[uuid.UUID, list[int]] = field(default_factory=lambda: defaultdict(list))
    drops: dict[uuid.UUID, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    orphans: list[str] = field(default_factory=list)  # objects of reads merged away or replaced
    stored: int = 0
    merged: int = 0
    duplicates: int = 0
    quarantined: int = 0
    heartbeats: int = 0
    protected: int = 0  # reads of Safe at Home plates, destroyed at collection
    matched: int = 0  # new reads matched at import (stored finished, not left for `finish_reads`)
    events: int = 0  # hit events queued for the stream
    # Looked up once per round rather than once per read (issue 18): the keys already stored, and which plates are
    # Safe at Home. Reads that are simply new are inserted together at the end of the round (`_flush_new`).
    known: dict[tuple[uuid.UUID, str], _Key] | None = None
    protected_plates: set[tuple[str, str]] = field(default_factory=set)  # (plate, recording agency)
    new: list[_NewRead] = field(default_factory=list)


class _Key(NamedTuple):
    key: str
    read_id: uuid.UUID
    captured_at: datetime


@dataclass
class _NewRead:
    record: spool_files.SpoolRecord
    data_type: str | None
    agent: AgentInfo
    row: dict[str, Any]
    agent_read: dict[str, Any]
    keys: list[str]
    covert: list[dict[str, Any]] = field(default_factory=list)  # covert hits, when matched at import


class AgentImporter:
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
                parsed = await _parse_all(records)
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

    async def _flush_new(self, conn: AsyncConnection, batch: _Batch) -> None:
        """Insert the reads queued by `_read(defer=...)` together: three statements for the lot."""
        if not batch.new:
            return
        new, batch.new = batch.new, []
        await self._match_new(new, batch)
        try:
            async with conn.begin_nested():
                rows = [n.row for n in new]
                result = await conn.execute(_insert_many(READS, rows[0], "RETURNING id"), _arrays(READS, rows))
                stored = {r.id for r in result}
                fresh = [n.agent_read for n in new if n.row["id"] in stored]
                if fresh:
                    await conn.execute(_insert_many(AGENT_READS, fresh[0]), _arrays(AGENT_READS, fresh))
                keys = [(n.agent.id, k, n.row["id"], n.row["captured_at"]) for n in new for k in n.keys]
                await conn.execute(
                    text(
                        "INSERT INTO ingest.agent_read_keys (agent_id, key, read_id, captured_at) "
                        "SELECT * FROM unnest(CAST(:a AS uuid[]), CAST(:k AS text[]), CAST(:r AS uuid[]), "
                        "CAST(:at AS timestamptz[])) ON CONFLICT (agent_id, key) DO NOTHING"
                    ),
                    {name: [k[i] for k in keys] for i, name in enumerate(("a", "k", "r", "at"))},
                )
                await self._hit_events(conn, [n for n in new if n.row["id"] in stored], batch)
        except DBAPIError as exc:
            if _is_outage(exc):
                raise
            # A value PostgreSQL refuses in one of them: each read on its own, so only that one is quarantined.
            for n in new:
                await self._insert_alone(conn, n, batch)
            return
        batch.stored += len(stored)
        batch.duplicates += len(new) - len(stored)  # stored by an earlier import whose offset was lost

    async def _match_new(self, new: list[_NewRead], batch: _Batch) -> None:
        """Match the round's new reads before they are inserted, in one hotlist call per 500: they are stored
        finished, rather than stored, read back, updated and marked again by `finish_reads` (issue 18: that second
        pass wrote each read twice and cost as much CPU as accepting it). Reads waiting for a second reading by
        recognition, and any when hotlist fails, are left to `finish_reads` as before."""
        ctx, settings = self.ctx, self.ctx.settings
        if not (settings.ingest_call_hotlist and ctx.hotlist is not None) or time.monotonic() < self._match_again_at:
            return
        todo = [
            n
            for n in new
            if n.agent_read["finish_pending"]
            and not (settings.ingest_agent_second_read and ctx.recognition is not None and n.row["crop_key"])
        ]
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            payloads = []
            for n in chunk:
                alternatives = [c["plate"] for c in n.agent_read["candidates"] or [] if c.get("plate")]
                alts = [a for a in dict.fromkeys(alternatives) if a and a != n.row["plate"]][:8]
                payloads.append(payload_of(n.row, alts))
            try:
                answers = await ctx.hotlist.match_many(payloads)
            except CallFailed as exc:
                log.info("agent_match_at_import_failed", error=str(exc), reads=len(chunk))
                self._match_again_at = time.monotonic() + 30.0  # a down hotlist must not slow each round
                return
            for n, body in zip(chunk, answers, strict=True):
                n.row["hits"], n.covert = apply_match(n.row, body)
                n.agent_read["finish_pending"] = False
                batch.matched += 1

    async def _hit_events(self, conn: AsyncConnection, stored: list[_NewRead], batch: _Batch) -> None:
        """The stream events of reads matched at import, in the transaction that stores them."""
        hit = [n for n in stored if n.row["hits"] or n.covert]
        if not hit:
            return
        for n in hit:
            # Covert hits go to the list owner's agency stream, never to a dispatch or car stream. On the connection
            # itself: a session bound to it would roll back the savepoint the inserts are in when it closes.
            batch.events += await add_hit_events(conn, n.row["hits"] + n.covert, n.row)

    async def _insert_alone(self, conn: AsyncConnection, n: _NewRead, batch: _Batch) -> None:
        try:
            async with conn.begin_nested():
                inserted = await conn.execute(
                    insert(READS).values(n.row).on_conflict_do_nothing().returning(READS.c.id)
                )
                if inserted.first() is None:
                    batch.duplicates += 1
                else:
                    batch.stored += 1
                    await conn.execute(insert(AGENT_READS).values(n.agent_read).on_conflict_do_nothing())
                    await self._hit_events(conn, [n], batch)
                await self._add_keys(conn, n.agent.id, n.keys, n.row["id"], n.row["captured_at"])
        except DBAPIError as exc:
            if _is_outage(exc):
                raise
            reason = f"could not be stored: {type(exc.orig).__name__}"
            await self._quarantine(conn, n.record, n.agent, reason, batch, data_type=n.data_type)

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

    async def _quarantine(
        self,
        conn: AsyncConnection,
        record: spool_files.SpoolRecord,
        agent: AgentInfo | None,
        reason: str,
        batch: _Batch,
        *,
        data_type: str | None = None,
        post: ParsedPost | None = None,
    ) -> None:
        times = [pr.epoch_ms for pr in post.reads] if post else []
        if post and post.epoch_ms is not None:
            times.append(post.epoch_ms)
        try:
            captured = _at(min(times)) if times else None
        except (OverflowError, OSError, ValueError):
            captured = None
        try:
            body = json.dumps(scrub(loads(record.body))).encode()  # disallowed fields never reach the database
        except (Malformed, ValueError, RecursionError):
            body = record.body[:QUARANTINE_BODY_MAX]
        batch.quarantined += 1
        log.warning("agent_post_quarantined", agent=str(agent.id) if agent else None, reason=reason)
        await conn.execute(
            text(
                "INSERT INTO ingest.agent_quarantine (id, agent_id, received_at, data_type, reason, body, "
                "captured_at, plates) VALUES (:id, :agent, :at, :dt, :reason, :body, :captured, :plates) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            {
                "id": record.id,
                "agent": agent.id if agent else None,
                "at": datetime.fromtimestamp(record.received_ms / 1000, UTC),
                "dt": data_type,
                "reason": reason.replace("\x00", "")[:1000],
                "body": body,
                "captured": captured,
                "plates": sorted({pr.plate for pr in post.reads}) if post else [],
            },
        )

    async def _read(
        self,
        conn: AsyncConnection,
        agent: AgentInfo,
        pr: PlateRead,
        batch: _Batch,
        defer: tuple[spool_files.SpoolRecord, str | None] | None = None,
    ) -> None:
        """Store one read. `defer` (the post it came in): a new read is queued for the round's one INSERT."""
        settings = self.ctx.settings
        try:
            captured = _at(pr.epoch_ms)
        except (OverflowError, OSError, ValueError):
            raise Refused(f"epoch_time {pr.epoch_ms} is not a time") from None
        now = datetime.now(UTC)
        if (captured - now).total_seconds() > settings.ingest_clock_skew_s:
            raise Refused(f"epoch_time {pr.epoch_ms} is in the future")
        if captured < now - timedelta(days=settings.ingest_max_read_age_days):
            raise Refused(f"epoch_time {pr.epoch_ms} is older than the retention period")
        lat, lon, located = pr.lat, pr.lon, "gps"
        if lat is None or lon is None:
            lat, lon, located = agent.lat, agent.lon, "fixed"
        if (lat is None or lon is None) and agent.kind == "unit" and agent.unit:
            lat, lon, located = *await self._mdc_position(conn, agent, captured), "mdc"
        if lat is None or lon is None:
            # Never quarantined for it: a read without a position is still a read, matched and alerted like any other.
            lat, lon, located = None, None, "none"
        shift_id: uuid.UUID | None = None
        if agent.kind == "unit":
            assert agent.unit is not None
            skew = timedelta(seconds=settings.ingest_clock_skew_s)
            shift_id = await conn.scalar(
                text(
                    # Unit names are unique per agency: the agent's agency's unit.
                    "SELECT id FROM ingest.shifts WHERE unit = :unit AND coalesce(agency, '') = :agency "
                    "AND started_at - CAST(:skew AS interval) <= CAST(:at AS timestamptz) "
                    "AND least(coalesce(ended_at, 'infinity'), expires_at) >= CAST(:at AS timestamptz) "
                    "ORDER BY started_at DESC LIMIT 1"
                ),
                {"unit": agent.unit, "agency": agent.agency or "", "at": captured, "skew": skew},
            )
            if shift_id is None:
                raise Refused(f"unit {agent.unit} was offline at {captured.isoformat()} (no shift)")
        unit = agent.unit if agent.kind == "unit" and agent.unit else dispatch_unit(agent.agency)

        if batch.known is not None:
            found: list[Any] = [batch.known[(agent.id, k)] for k in pr.keys if (agent.id, k) in batch.known]
        else:
            found = list(
                (
                    await conn.execute(
                        text(
                            "SELECT key, read_id, captured_at FROM ingest.agent_read_keys "
                            "WHERE agent_id = :a AND key = ANY(:keys)"
                        ),
                        {"a": agent.id, "keys": pr.keys},
                    )
                ).all()
            )
        wants_finish = self._wants_finish(pr)
        if not found:
            if (pr.plate, agent.agency or "") in batch.protected_plates or (
                batch.known is None and await protected_plates(self.ctx, (pr.plate,), agent.agency or "")
            ):
                batch.protected += 1  # Safe at Home: never stored, never matched (Minn. Stat. 13.824 subd. 3(c))
                return
            read_id = read_id_for(agent.id, pr.best_key)
            image_key, crop_key = await self._upload(read_id, captured, pr)
            row = {
                "id": read_id,
                "captured_at": captured,
                "received_at": now,
                "agency": agent.agency,
                "unit": unit,
                "shift_id": shift_id,
                "camera": f"{agent.name}/{pr.camera}"[:64],
                "client_read_id": f"agent:{agent.id.hex[:12]}:{pr.best_key}",
                "lat": lat,
                "lon": lon,
                "heading": None,
                "speed": None,
                "plate": pr.plate,
                "confusion_key": plates.confusion_key(pr.plate),
                "plate_confidence": _unit_confidence(pr.confidence),
                "state": pr.state,
                "plate_source": "agent",
                "car_plate": None,
                "image_key": image_key,
                "crop_key": crop_key,
                "recognition_pending": False,
                "match_pending": False,
                "attempts": 0,
                "last_error": None,
                "list_version": None,
                "hits": [],
            }
            agent_read = self._agent_read(read_id, captured, agent, pr, located, wants_finish, now)
            if defer is not None and batch.known is not None:
                batch.new.append(_NewRead(defer[0], defer[1], agent, row, agent_read, pr.keys))
                for k in pr.keys:
                    batch.known.setdefault((agent.id, k), _Key(k, read_id, captured))
                return
            inserted = await conn.execute(insert(READS).values(row).on_conflict_do_nothing().returning(READS.c.id))
            if inserted.first() is None:
                batch.duplicates += 1  # stored by an earlier import whose offset was lost
            else:
                batch.stored += 1
                await conn.execute(insert(AGENT_READS).values(agent_read).on_conflict_do_nothing())
            await self._add_keys(conn, agent.id, pr.keys, read_id, captured, batch)
            return
        if pr.source == "alpr_results":
            batch.duplicates += 1  # the same frame posted again
            return
        await self._merge(conn, agent, pr, found, lat, lon, located, wants_finish, now, batch)

    async def _mdc_position(
        self, conn: AsyncConnection, agent: AgentInfo, captured: datetime
    ) -> tuple[float | None, float | None]:
        """The unit's position from its MDC: the MDC's own read (posted to /v1/reads, not by an agent) nearest the
        capture time, within `ingest_agent_mdc_position_max_age_s` either side."""
        window = timedelta(seconds=self.ctx.settings.ingest_agent_mdc_position_max_age_s)
        found = (
            await conn.execute(
                text(
                    "SELECT lat, lon FROM ingest.reads WHERE agency = :agency AND unit = :unit "
                    "AND captured_at BETWEEN CAST(:at AS timestamptz) - CAST(:w AS interval) "
                    "AND CAST(:at AS timestamptz) + CAST(:w AS interval) "
                    "AND lat IS NOT NULL AND lon IS NOT NULL AND client_read_id NOT LIKE 'agent:%' "
                    "ORDER BY abs(extract(epoch FROM captured_at - CAST(:at AS timestamptz))) LIMIT 1"
                ),
                {"agency": agent.agency or "", "unit": agent.unit, "at": captured, "w": window},
            )
        ).first()
        return (found.lat, found.lon) if found is not None else (None, None)

    async def _merge(
        self,
        conn: AsyncConnection,
        agent: AgentInfo,
        pr: PlateRead,
        found: list[Any],
        lat: float | None,
        lon: float | None,
        located: str,
        wants_finish: bool,
        now: datetime,
        batch: _Batch,
    ) -> None:
        """A group (or alert) whose frames or preview are stored: one read, the group's reading wins."""
        reads = {r.read_id: r.captured_at for r in found}
        best = next((r for r in found if r.key == pr.best_key), None)
        target = best.read_id if best else min(reads, key=lambda rid: (reads[rid], str(rid)))
        target_at = reads[target]
        current = (
            await conn.execute(
                text(
                    "SELECT a.is_preview, a.source, a.keys, r.image_key, r.crop_key FROM ingest.agent_reads a "
                    "JOIN ingest.reads r ON r.id = a.read_id AND r.captured_at = a.captured_at WHERE a.read_id = :id"
                ),
                {"id": target},
            )
        ).first()
        others = [rid for rid in reads if rid != target]
        final_stored = current is not None and current.source != "alpr_results" and not current.is_preview
        if pr.is_preview and final_stored:
            batch.duplicates += 1  # a late preview never replaces the final group
            await self._add_keys(conn, agent.id, pr.keys, target, target_at, batch)
            return
        image_key, crop_key = await self._upload(read_id_for(agent.id, pr.best_key), target_at, pr)
        if current is not None:
            batch.orphans += [k for k in (current.image_key, current.crop_key) if k and k not in (image_key, crop_key)]
        await conn.execute(
            READS.update()
            .where(READS.c.id == target, READS.c.captured_at == target_at)
            .values(
                plate=pr.plate,
                confusion_key=plates.confusion_key(pr.plate),
                plate_confidence=_unit_confidence(pr.confidence),
                state=pr.state,
                lat=lat,
                lon=lon,
                camera=f"{agent.name}/{pr.camera}"[:64],
                image_key=image_key or (current.image_key if current else None),
                crop_key=crop_key or (current.crop_key if current else None),
            )
        )
        keys = sorted(set(pr.keys) | set(current.keys if current else []))
        values = self._agent_read(target, target_at, agent, pr, located, wants_finish, now)
        values["keys"] = keys
        await conn.execute(
            insert(AGENT_READS)
            .values(values)
            .on_conflict_do_update(index_elements=["read_id"], set_={k: v for k, v in values.items() if k != "read_id"})
        )
        if others:
            gone = (
                await conn.execute(
                    text("SELECT image_key, crop_key FROM ingest.reads WHERE id = ANY(:ids)"), {"ids": others}
                )
            ).all()
            batch.orphans += [k for r in gone for k in (r.image_key, r.crop_key) if k]
            await conn.execute(text("DELETE FROM ingest.reads WHERE id = ANY(:ids)"), {"ids": others})
            await conn.execute(text("DELETE FROM ingest.agent_reads WHERE read_id = ANY(:ids)"), {"ids": others})
            await conn.execute(
                text("UPDATE ingest.agent_read_keys SET read_id = :t, captured_at = :at WHERE read_id = ANY(:ids)"),
                {"t": target, "at": target_at, "ids": others},
            )
        await self._add_keys(conn, agent.id, pr.keys, target, target_at, batch)
        batch.merged += 1

    def _wants_finish(self, pr: PlateRead) -> bool:
        s, ctx = self.ctx.settings, self.ctx
        second = s.ingest_agent_second_read and ctx.recognition is not None and pr.plate_crop is not None
        return bool(second or (s.ingest_call_hotlist and ctx.hotlist is not None))

    @staticmethod
    def _agent_read(
        read_id: uuid.UUID,
        captured: datetime,
        agent: AgentInfo,
        pr: PlateRead,
        located: str,
        wants_finish: bool,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "read_id": read_id,
            "captured_at": captured,
            "agent_id": agent.id,
            "source": pr.source,
            "is_preview": pr.is_preview,
            "agent_plate": pr.plate,
            "agent_confidence": pr.confidence,
            "corners": pr.corners,
            "candidates": pr.candidates,
            "keys": pr.keys,
            "location_source": located,
            "finish_pending": wants_finish,
            "updated_at": now,
        }

    async def _add_keys(
        self,
        conn: AsyncConnection,
        agent_id: uuid.UUID,
        keys: list[str],
        read_id: uuid.UUID,
        at: datetime,
        batch: _Batch | None = None,
    ) -> None:
        if batch is not None and batch.known is not None:
            for k in keys:
                batch.known.setdefault((agent_id, k), _Key(k, read_id, at))
        await conn.execute(
            text(
                "INSERT INTO ingest.agent_read_keys (agent_id, key, read_id, captured_at) "
                "VALUES (:a, :k, :r, :at) ON CONFLICT (agent_id, key) DO NOTHING"
            ),
            [{"a": agent_id, "k": k, "r": read_id, "at": at} for k in keys],
        )

    async def _upload(self, read_id: uuid.UUID, captured: datetime, pr: PlateRead) -> tuple[str | None, str | None]:
        """Crops go where every read's pictures go (day first: the purge deletes a day by prefix). The key is fixed
        by the read, so a batch retried after an outage overwrites rather than orphans."""
        if pr.vehicle_crop is None and pr.plate_crop is None:
            return None, None  # most posts: no pictures, and no two tasks to learn it
        prefix = f"reads/{capture_day(captured):%Y/%m/%d}/{read_id}.agent"

        async def put(img: CheckedImage | None, what: str) -> str | None:
            if img is None:
                return None
            key = f"{prefix}.{what}.{img.extension}"
            await self.ctx.store.put(key, img.data, img.content_type)  # StorageError: the batch rolls back
            return key

        image_key, crop_key = await asyncio.gather(put(pr.vehicle_crop, "vehicle"), put(pr.plate_crop, "plate"))
        return image_key, crop_key

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

    # ---- matching and the second reading, after the import committed ----------------------------------------

    async def finish_backlog(self, limit: int = 200) -> int:
        """Match batch after batch, without pausing, until a batch comes back short: the backlog is worked off
        at the rate matching allows, not one batch per import round."""
        total = 0
        while True:
            done = await self.finish_reads(limit)
            total += done
            if done < limit:
                return total

    async def finish_reads(self, limit: int = 200) -> int:
        ctx = self.ctx
        settings = ctx.settings
        done = 0
        if not (
            (settings.ingest_call_hotlist and ctx.hotlist is not None)
            or (settings.ingest_agent_second_read and ctx.recognition is not None)
        ):
            return 0
        async with ctx.engine.connect() as conn, conn.begin():
            # The oldest pending first, from the partial index; then their reads by primary key within the time
            # range they span (a join here hashed every pending row against a scan of the whole reads table).
            picked = (
                await conn.execute(
                    text(
                        "SELECT read_id, captured_at, candidates FROM ingest.agent_reads WHERE finish_pending "
                        "ORDER BY captured_at LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": limit},
                )
            ).all()
            if not picked:
                return 0
            candidates = {(p.read_id, p.captured_at): p.candidates for p in picked}
            found = await conn.execute(
                text(
                    "SELECT * FROM ingest.reads WHERE id = ANY(:ids) "
                    "AND captured_at BETWEEN :lo AND :hi ORDER BY captured_at"
                ),
                {
                    "ids": [p.read_id for p in picked],
                    "lo": min(p.captured_at for p in picked),
                    "hi": max(p.captured_at for p in picked),
                },
            )
            rows = [
                {**r._mapping, "agent_candidates": candidates[(r.id, r.captured_at)]}
                for r in found
                if (r.id, r.captured_at) in candidates
            ]
            have = {(r["id"], r["captured_at"]) for r in rows}
            gone = [p.read_id for p in picked if (p.read_id, p.captured_at) not in have]  # purged meanwhile
            gate = asyncio.Semaphore(16)

            async def one(r: dict[str, Any]) -> dict[str, Any]:
                row: dict[str, Any] = dict(r)
                alternatives = [c["plate"] for c in row.pop("agent_candidates") or [] if c.get("plate")]
                if settings.ingest_agent_second_read and ctx.recognition is not None and row["crop_key"]:
                    async with gate:  # recognition's OCR threads; the checks below are batched across reads
                        try:
                            data = await ctx.store.get(row["crop_key"])
                            ctype = "image/png" if row["crop_key"].endswith(".png") else "image/jpeg"
                            apply_recognition(row, await recognize(ctx, data, ctype))
                        except (CallFailed, StorageError) as exc:
                            row["recognition_pending"], row["last_error"] = True, str(exc)
                if await protected_plates(ctx, (row["plate"], row["car_plate"]), row["agency"] or ""):
                    row["protected"] = True  # Safe at Home: destroyed now, never matched (13.824 subd. 3(c))
                    return row
                if settings.ingest_call_hotlist and ctx.hotlist is not None and not row["recognition_pending"]:
                    alts = [a for a in dict.fromkeys([*alternatives, row["car_plate"] or ""]) if a]
                    alts = [a for a in alts if a != row["plate"]][:8]
                    try:
                        row["hits"], row["covert"] = await match(ctx, row, alts)
                    except CallFailed as exc:
                        row["match_pending"], row["last_error"] = True, str(exc)
                elif row["recognition_pending"] and settings.ingest_call_hotlist:
                    row["match_pending"] = True
                return row

            finished = await asyncio.gather(*(one(r) for r in rows))
            doomed = [row["id"] for row in finished if row.get("protected")]
            finished = [row for row in finished if not row.get("protected")]
            keys = await destroy_reads(conn, doomed)
            events = 0
            async with ctx.sessionmaker(bind=conn) as session:
                if finished:
                    # One executemany for the batch, not a statement per read.
                    await session.execute(
                        text(
                            "UPDATE ingest.reads SET plate = :plate, confusion_key = :confusion_key, "
                            "plate_confidence = :plate_confidence, state = :state, plate_source = :plate_source, "
                            "car_plate = :car_plate, recognition_pending = :recognition_pending, "
                            "match_pending = :match_pending, list_version = :list_version, "
                            "hits = CAST(:hits AS jsonb), last_error = :last_error "
                            "WHERE id = :id AND captured_at = :captured_at"
                        ),
                        [
                            {
                                "id": row["id"],
                                "captured_at": row["captured_at"],
                                "plate": row["plate"],
                                "confusion_key": plates.confusion_key(row["plate"]) if row["plate"] else None,
                                "plate_confidence": row["plate_confidence"],
                                "state": row["state"],
                                "plate_source": row["plate_source"],
                                "car_plate": row["car_plate"],
                                "recognition_pending": row["recognition_pending"],
                                "match_pending": row["match_pending"],
                                "list_version": row["list_version"],
                                "hits": json.dumps(row["hits"], default=str),
                                "last_error": row["last_error"],
                            }
                            for row in finished
                        ],
                    )
                for row in finished:
                    # Covert hits go to the list owner's agency stream, never to a dispatch or car stream.
                    events += await add_hit_events(session, row["hits"] + row.pop("covert", []), row)
                    done += 1
                await session.execute(
                    text("UPDATE ingest.agent_reads SET finish_pending = false WHERE read_id = ANY(:ids)"),
                    {"ids": [row["id"] for row in finished] + gone},
                )
                await session.flush()
        # Committed: the destroyed reads' objects go too.
        await delete_quietly(self.ctx.store, keys)
        if events:
            ctx.hub.notify()
        return done + len(doomed)


# Records parsed (or applied) between two yields to the event loop: the importer shares its loop with the posts it
# imports, and a few thousand records parsed in one go (or in a thread, whose hold on the GIL makes the loop wait
# up to the 5 ms switch interval at every turn) showed as 100-200 ms answers to the agents (issue 18).
YIELD_EVERY = 16
HANDOVER_S = 0.02  # between two rounds of a backlog, and between tries while another worker imports


async def _parse_all(
    records: list[spool_files.SpoolRecord],
) -> list[tuple[spool_files.SpoolRecord, ParsedPost | Malformed]]:
    out: list[tuple[spool_files.SpoolRecord, ParsedPost | Malformed]] = []
    for i, record in enumerate(records):
        if i and i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        try:
            out.append((record, parse(record.body)))
        except Malformed as exc:
            out.append((record, exc))
        except Exception as exc:  # noqa: BLE001 - a body the parser chokes on is quarantined alone
            log.exception("agent_post_parse_failed")
            out.append((record, Malformed(f"cannot be parsed: {type(exc).__name__}")))
    return out


def _insert_many(table: Any, sample: dict[str, Any], returning: str = "") -> Any:
    """One INSERT of many rows from one array per column (`unnest`): SQLAlchemy's and asyncpg's executemany
    handled a parameter set per row in the loop's thread, the importer's largest cost once the profile's other
    fixes were in (issue 18). JSON and array columns travel as JSON text (unnest would flatten an array of
    arrays). Rows already stored are skipped, as `on_conflict_do_nothing` did."""
    names = list(sample)
    columns = {c.name: c for c in table.c}
    arrays, picked = [], []
    for n in names:
        kind = columns[n].type
        if isinstance(kind, JSONB | ARRAY):
            arrays.append(f"CAST(:{n} AS text[])")
            picked.append(
                f"ARRAY(SELECT jsonb_array_elements_text(CAST({n} AS jsonb)))"
                if isinstance(kind, ARRAY)
                else f"CAST({n} AS jsonb)"
            )
        else:
            arrays.append(f"CAST(:{n} AS {kind.compile(dialect=_PG)}[])")
            picked.append(n)
    return text(
        f"INSERT INTO {table.schema}.{table.name} ({', '.join(names)}) SELECT {', '.join(picked)} "
        f"FROM unnest({', '.join(arrays)}) AS t({', '.join(names)}) ON CONFLICT DO NOTHING {returning}"
    )


def _arrays(table: Any, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    columns = {c.name: c for c in table.c}
    out: dict[str, list[Any]] = {}
    for name in rows[0]:
        values = [r[name] for r in rows]
        if isinstance(columns[name].type, JSONB | ARRAY):
            # Most reads have no hits: their "[]" is not encoded each time.
            values = [None if v is None else "[]" if v == [] else json.dumps(v, default=str) for v in values]
        out[name] = values
    return out


def _is_outage(exc: BaseException) -> bool:
    """PostgreSQL or the object store is down, or the database refuses for a reason of its own (the batch is retried
    whole, and /readyz says so), as against a post whose values fail alone (quarantined)."""
    if isinstance(exc, DBAPIError):
        return not is_poison(exc)
    # Unavailable: a batched check (Safe at Home) found the database down; CallFailed: recognition or hotlist is.
    return isinstance(exc, StorageError | ConnectionError | TimeoutError | OSError | Unavailable | CallFailed)


def _epoch_of(post: ParsedPost | Malformed) -> int:
    return (post.epoch_ms or 0) if isinstance(post, ParsedPost) else 0


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _storable(epoch_ms: int, max_age_days: int) -> bool:
    # Partitions only for times that can be stored (others are quarantined without one).
    try:
        day: date = capture_day(_at(epoch_ms))
    except (OverflowError, OSError, ValueError):
        return False
    today = datetime.now(UTC).date()
    return today - timedelta(days=max_age_days + 1) <= day <= today + timedelta(days=1)


def _unit_confidence(value: float | None) -> float | None:
    """Agents say 0-100; our reads keep 0-1."""
    if value is None:
        return None
    return max(0.0, min(1.0, value / 100.0))

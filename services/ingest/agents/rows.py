"""The import stage's rows: one spooled read stored (new, a duplicate, or merged into the group it belongs to), its
crops uploaded, its position found (the body's GPS, the fixed reader's place, the unit's MDC, or none: docs/ingest.md),
and the round's new reads inserted together. A mixin of `AgentImporter` (services/ingest/agents/importer.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.dialects.postgresql import dialect as _pg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.agents import spool as spool_files
from services.ingest.agents.models import AgentRead
from services.ingest.agents.parse import Malformed, ParsedPost, PlateRead, loads, scrub
from services.ingest.agents.registry import AgentInfo
from services.ingest.clients import CallFailed
from services.ingest.images import CheckedImage
from services.ingest.positions import position_near
from services.ingest.service import (
    protected_plates,
)
from services.ingest.writer import READS, capture_day
from shared import plates
from shared.errors import Unavailable, is_poison
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
    officers: dict[uuid.UUID, str] = field(default_factory=dict)  # shift id -> its officer, for the match request
    new: list[_NewRead] = field(default_factory=list)
    # (id, captured_at) of the reads inserted this round, for its audit entry (a savepoint rolled back may leave one
    # here: the entry takes those found in ingest.reads at the end of the round).
    inserted: list[tuple[uuid.UUID, datetime]] = field(default_factory=list)


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


class RowStage:
    """Storing one read, and the round's new reads together."""

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
        batch.inserted += [(n.row["id"], n.row["captured_at"]) for n in new if n.row["id"] in stored]
        batch.duplicates += len(new) - len(stored)  # stored by an earlier import whose offset was lost

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
                    batch.inserted.append((n.row["id"], n.row["captured_at"]))
                    await conn.execute(insert(AGENT_READS).values(n.agent_read).on_conflict_do_nothing())
                    await self._hit_events(conn, [n], batch)
                await self._add_keys(conn, n.agent.id, n.keys, n.row["id"], n.row["captured_at"])
        except DBAPIError as exc:
            if _is_outage(exc):
                raise
            reason = f"could not be stored: {type(exc.orig).__name__}"
            await self._quarantine(conn, n.record, n.agent, reason, batch, data_type=n.data_type)

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
            if lat is not None and agent.placed_on and captured.date() < date.fromisoformat(agent.placed_on):
                # Taken before the reader stood here (a move's date): its place is not this one (subd. 8 register).
                raise Refused(f"captured before the reader was placed at its location on {agent.placed_on}")
        if (lat is None or lon is None) and agent.kind == "unit" and agent.unit:
            window = timedelta(seconds=settings.ingest_agent_mdc_position_max_age_s)
            mdc = await position_near(conn, agent.agency or "", agent.unit, captured, window)
            if mdc is not None:
                lat, lon, located = *mdc, "mdc"
        if lat is None or lon is None:
            # Never quarantined for it: a read without a position is still a read, matched and alerted like any other.
            lat, lon, located = None, None, "none"
        shift_id: uuid.UUID | None = None
        if agent.kind == "unit":
            assert agent.unit is not None
            skew = timedelta(seconds=settings.ingest_clock_skew_s)
            shift = (
                await conn.execute(
                    text(
                        # Unit names are unique per agency: the agent's agency's unit.
                        "SELECT id, officer FROM ingest.shifts WHERE unit = :unit AND coalesce(agency, '') = :agency "
                        "AND started_at - CAST(:skew AS interval) <= CAST(:at AS timestamptz) "
                        "AND least(coalesce(ended_at, 'infinity'), expires_at) >= CAST(:at AS timestamptz) "
                        "ORDER BY started_at DESC LIMIT 1"
                    ),
                    {"unit": agent.unit, "agency": agent.agency or "", "at": captured, "skew": skew},
                )
            ).first()
            if shift is None:
                raise Refused(f"unit {agent.unit} was offline at {captured.isoformat()} (no shift)")
            shift_id = shift.id
            batch.officers[shift_id] = shift.officer  # the unit's officer at capture: carried on its hits
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
                batch.inserted.append((read_id, captured))
                await conn.execute(insert(AGENT_READS).values(agent_read).on_conflict_do_nothing())
            await self._add_keys(conn, agent.id, pr.keys, read_id, captured, batch)
            return
        if pr.source == "alpr_results":
            batch.duplicates += 1  # the same frame posted again
            return
        await self._merge(conn, agent, pr, found, lat, lon, located, wants_finish, now, batch)

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


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _unit_confidence(value: float | None) -> float | None:
    """Agents say 0-100; our reads keep 0-1."""
    if value is None:
        return None
    return max(0.0, min(1.0, value / 100.0))

"""The match stage: the round's new reads matched against the hot list before they are inserted, their hit events
written with them, and what an import could not finish (a second reading by recognition, a match while hotlist was
down) finished afterwards. A mixin of `AgentImporter` (services/ingest/agents/importer.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.agents.rows import _Batch, _NewRead
from services.ingest.clients import CallFailed
from services.ingest.officers import shift_officers
from services.ingest.protected import destroy_reads
from services.ingest.service import (
    apply_match,
    apply_recognition,
    delete_quietly,
    match,
    payload_of,
    protected_plates,
    recognize,
)
from services.ingest.stream_events import add_hit_events
from shared import plates
from shared.storage import StorageError

log = structlog.get_logger(__name__)


class MatchStage:
    """Matching at import, and finishing what an import left."""

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
                payloads.append(payload_of(n.row, alts, batch.officers.get(n.row["shift_id"])))
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
            officers = await shift_officers(conn, (r["shift_id"] for r in rows))

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
                        row["hits"], row["covert"] = await match(ctx, row, alts, officers.get(row["shift_id"]))
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

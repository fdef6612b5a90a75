"""The background worker, run in the lifespan: finishes reads whose recognition or match is pending once the
other services answer again, closes expired shifts, and announces hot-list updates to the cars."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from sqlalchemy import select, text, update

from services.ingest.clients import CallFailed
from services.ingest.officers import shift_officers
from services.ingest.positions import forget_old_positions
from services.ingest.protected import destroy_reads
from services.ingest.service import (
    IngestContext,
    alternatives_for,
    apply_recognition,
    close_expired_shifts,
    delete_quietly,
    match,
    protected_plates,
    recognize,
    with_agreement,
)
from services.ingest.stream_events import add_hit_events, add_notice
from services.ingest.writer import READS
from shared import plates
from shared.health import LoopHealth
from shared.storage import ObjectNotFound, StorageError

log = structlog.get_logger(__name__)


class Worker:
    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_version: int | None = None
        self._next_version_check = 0.0
        self.rounds = 0
        self.backlog = False  # the last round found a full batch and every service answered: go again at once
        self.health = LoopHealth("ingest_worker")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ingest-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        interval = self.ctx.settings.ingest_worker_interval_s
        while True:
            try:
                await self.run_once()
                self.health.ok()
            except Exception as exc:  # noqa: BLE001 - an outage must not kill the worker; it retries next round
                self.health.failed(exc)
                log.warning("ingest_worker_round_failed", error=repr(exc))
                self.backlog = False
            self.rounds += 1
            if self.backlog:
                continue  # drain at full speed while the services keep up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def run_once(self) -> int:
        async with self.ctx.sessionmaker() as session:
            await close_expired_shifts(session)
            await forget_old_positions(session, self.ctx.settings)  # kept no longer than needed, posts or not
            await session.commit()
        done = await self.finish_pending()
        await self.check_hotlist_version()
        return done

    async def finish_pending(self) -> int:
        """Finish pending reads, oldest first. A service that failed is not called again this round (the next
        round retries it), but reads that need only the others go on: with recognition down, reads the car
        already read are still matched and their late hits delivered."""
        ctx = self.ctx
        done = 0
        async with ctx.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(READS)
                    .where(text("recognition_pending OR match_pending"))
                    .order_by(READS.c.received_at)
                    .limit(ctx.settings.ingest_worker_batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            events = 0
            down: dict[str, str] = {}  # service -> why it failed this round
            doomed: list[Any] = []  # Safe at Home reads, destroyed instead of finished
            # Photos go to recognition several at once (its pool reads them in parallel); the first refusal marks
            # it down for the round, so the others wait for the next round instead of piling onto a full queue.
            gate = asyncio.Semaphore(ctx.settings.ingest_worker_recognition_concurrency)

            officers = await shift_officers(session, (r.shift_id for r in rows))

            async def finish(r: Any) -> tuple[dict[str, Any], str | None]:
                row: dict[str, Any] = dict(r._mapping)
                row["officer"] = officers.get(row["shift_id"])  # the unit's officer at capture, kept on its hits
                async with gate:
                    try:
                        await self._finish(row, down)
                    except CallFailed as exc:
                        return row, str(exc)
                return row, None

            for row, error in await asyncio.gather(*(finish(r) for r in rows)):
                if row.get("protected"):
                    doomed.append(row["id"])
                    continue
                # What was finished is kept even when a later step failed (recognised, not yet matched).
                await session.execute(
                    update(READS)
                    .where(READS.c.id == row["id"], READS.c.captured_at == row["captured_at"])
                    .values(
                        plate=row["plate"],
                        confusion_key=plates.confusion_key(row["plate"]) if row["plate"] else None,
                        plate_confidence=row["plate_confidence"],
                        state=row["state"],
                        plate_source=row["plate_source"],
                        car_plate=row["car_plate"],
                        agreement=row.get("agreement"),
                        recognition_pending=row["recognition_pending"],
                        match_pending=row["match_pending"],
                        list_version=row["list_version"],
                        hits=row["hits"],
                        attempts=READS.c.attempts + 1,
                        last_error=error,
                    )
                )
                if error is not None:
                    continue
                events += await add_hit_events(session, row["hits"] + row.pop("covert", []), row)
                if not (row["recognition_pending"] or row["match_pending"]):
                    done += 1
            keys = await destroy_reads(await session.connection(), doomed)
            await session.commit()
        await delete_quietly(ctx.store, keys)
        if events:
            ctx.hub.notify()
        self.backlog = len(rows) >= ctx.settings.ingest_worker_batch and not down
        return done + len(doomed)

    async def _finish(self, row: dict[str, Any], down: dict[str, str]) -> None:
        ctx = self.ctx
        if row["recognition_pending"]:
            if ctx.recognition is None or not row["image_key"]:
                return
            for service in ("store", "recognition"):
                if service in down:
                    raise CallFailed(down[service])
            key = row["crop_key"] or row["image_key"]
            try:
                data = await ctx.store.get(key)
            except ObjectNotFound:
                row["recognition_pending"] = False  # nothing left to read (purged): the read stays as it is
                return
            except StorageError as exc:
                down["store"] = f"object store: {exc}"
                raise CallFailed(down["store"]) from exc
            content_type = "image/png" if key.endswith(".png") else "image/jpeg"
            try:
                found = await recognize(ctx, data, content_type)
            except CallFailed as exc:
                down["recognition"] = str(exc)
                raise
            apply_recognition(row, found)
            row["recognition_pending"] = False
            row["candidate"] = found
        if await protected_plates(ctx, (row["plate"], row["car_plate"]), row["agency"] or ""):
            row["protected"] = True  # Safe at Home: destroyed now, never matched (Minn. Stat. 13.824 subd. 3(c))
            return
        if row["match_pending"]:
            if not row["plate"] or not ctx.settings.ingest_call_hotlist:
                row["match_pending"] = False  # recognition found no plate: nothing to match
                return
            if ctx.hotlist is None:
                return
            if "hotlist" in down:
                raise CallFailed(down["hotlist"])
            # Recognition's alternatives (both readers', issue 27) when it read the photo in this round.
            alternatives = alternatives_for(row.pop("candidate", None), row["car_plate"], row["plate"])
            try:
                row["hits"], row["covert"] = await match(ctx, row, alternatives, row.get("officer"))
                with_agreement(row["hits"], row)
            except CallFailed as exc:
                down["hotlist"] = str(exc)
                raise
            row["match_pending"] = False

    async def check_hotlist_version(self) -> None:
        ctx = self.ctx
        poll_s = ctx.settings.ingest_hotlist_poll_s
        loop = asyncio.get_running_loop()
        if ctx.hotlist is None or poll_s <= 0 or loop.time() < self._next_version_check:
            return
        self._next_version_check = loop.time() + poll_s
        try:
            info = await ctx.hotlist.version()
        except CallFailed:
            return
        version = info.get("version")
        if version is None or version == self._last_version:
            return
        async with ctx.sessionmaker() as session:
            new = await add_notice(
                session,
                "hotlist_update",
                f"hotlist:{version}",
                {
                    "version": version,
                    "loaded_at": info.get("loaded_at"),
                    "entries": info.get("entries"),
                    "stale": info.get("stale"),
                },
            )
            await session.commit()
        self._last_version = version
        if new:
            ctx.hub.notify()

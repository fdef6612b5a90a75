"""Ingest logic: shifts (who has a unit online) and the read pipeline (the stream's events: stream_events.py)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ingest.batching import Batcher
from services.ingest.clients import CallFailed, HotlistClient, RecognitionClient, match_payload
from services.ingest.images import CheckedImage
from services.ingest.inflight import InFlight
from services.ingest.models import Shift
from services.ingest.protected import protected_among
from services.ingest.schemas import ReadMetadata, ReadResult, ShiftOut, ShiftStart
from services.ingest.stream import StreamHub
from services.ingest.stream_events import HIT_NOTICE, add_hit_events
from services.ingest.suspension_models import refuse_if_suspended
from services.ingest.writer import ExistingReads, ReadWriter, WriteOutcome, capture_day
from shared import plates
from shared.auth import ADMIN, SUPERVISOR, Principal
from shared.errors import Conflict, Forbidden, NotFound, Unavailable, Unprocessable
from shared.scoping import Scope
from shared.settings import Settings
from shared.storage import ObjectStore, StorageError

log = structlog.get_logger(__name__)

# Read ids derive from the idempotency key: a retry reaches recognition and hotlist under the same id.
READ_ID_NAMESPACE = uuid.UUID("5d0c6a43-6c1e-4f55-9d2a-3b7f3f0e1a47")


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class IngestContext:
    """What the routes and the worker share, built in the lifespan."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    store: ObjectStore
    writer: ReadWriter
    existing: ExistingReads
    hub: StreamHub
    recognition: RecognitionClient | None
    hotlist: HotlistClient | None
    # Per-batch Safe at Home checks and hot-list matches (services.ingest.batching); unset: one call per read.
    protected: Batcher[tuple[str, tuple[str | None, ...]], set[str]] | None = None
    matches: Batcher[dict[str, Any], dict[str, Any]] | None = None
    inflight: InFlight = field(default_factory=InFlight)  # reads in ingest_read: the batches wait for them
    _open_shifts: dict[str, tuple[float, Shift | None]] = field(default_factory=dict)
    _shift_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def forget_unit(self, unit: str, agency: str | None = None) -> None:
        self._open_shifts.pop(_unit_key(unit, agency), None)


def _unit_key(unit: str, agency: str | None) -> str:
    # Unit names are unique per agency, not globally: agency A's "car-1" is not agency B's.
    return f"{agency or ''}\x00{unit}"


# ---- shifts -------------------------------------------------------------------------------------------------


def shift_out(shift: Shift, at: datetime | None = None) -> ShiftOut:
    at = at or now_utc()
    return ShiftOut(
        shift_id=shift.id,
        unit=shift.unit,
        agency=shift.agency,
        badge=shift.badge,
        cameras=list(shift.cameras),
        started_at=shift.started_at,
        expires_at=shift.expires_at,
        ended_at=shift.ended_at,
        end_reason=shift.end_reason,
        online=shift.ended_at is None and shift.expires_at > at,
    )


async def close_expired_shifts(session: AsyncSession, unit: str | None = None) -> int:
    """An expired shift ends at its expiry: the interval kept is the one the reader could collect in."""
    stmt = (
        update(Shift)
        .where(Shift.ended_at.is_(None), Shift.expires_at <= now_utc())  # type: ignore[union-attr,arg-type]
        .values(ended_at=Shift.expires_at, end_reason="expired")
    )
    if unit is not None:
        stmt = stmt.where(Shift.unit == unit)  # type: ignore[arg-type]
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def start_shift(session: AsyncSession, ctx: IngestContext, principal: Principal, body: ShiftStart) -> Shift:
    if principal.badge is None:
        raise Forbidden("the token carries no badge number: log in as an officer")
    if principal.badge != body.badge:
        raise Forbidden("badge number does not match the logged-in officer's token")
    now = now_utc()
    if principal.trained_until is None:
        raise Forbidden("no current ALPR training on record for this officer")
    if not principal.training_current(now):
        raise Forbidden(f"ALPR training expired on {principal.trained_until.isoformat()}")
    await refuse_if_suspended(ctx.engine, principal.agency)  # 13.824 subd. 6(b): no collection while suspended
    await close_expired_shifts(session, body.unit)
    current = (
        await session.execute(
            select(Shift).where(
                Shift.unit == body.unit,  # type: ignore[arg-type]
                Shift.agency.is_not_distinct_from(principal.agency),  # type: ignore[union-attr]
                Shift.ended_at.is_(None),  # type: ignore[union-attr]
            )
        )
    ).scalar_one_or_none()
    if current is not None:
        raise Conflict(f"unit {body.unit} already has an open shift (badge {current.badge}): end it first")
    # A shift ends at the configured length, or earlier when the officer's training lapses during it.
    expires = min(now + timedelta(hours=ctx.settings.ingest_shift_max_hours), principal.trained_until)
    shift = Shift(
        unit=body.unit,
        agency=principal.agency,
        badge=body.badge,
        officer=principal.subject,
        cameras=body.cameras,
        started_at=now,
        expires_at=expires,
    )
    session.add(shift)
    await session.flush()
    ctx.forget_unit(body.unit, principal.agency)
    return shift


def _may_manage(principal: Principal, shift: Shift) -> bool:
    if not Scope(principal).owns(shift.agency):
        return False  # another agency's shift does not exist for the caller
    return principal.has_role(SUPERVISOR, ADMIN) or principal.subject == shift.officer


async def get_shift(session: AsyncSession, principal: Principal, shift_id: uuid.UUID) -> Shift:
    shift = await session.get(Shift, shift_id)
    if shift is None or not (
        _may_manage(principal, shift) or (principal.has_role("auditor") and Scope(principal).owns(shift.agency))
    ):
        raise NotFound("no such shift")
    return shift


async def end_shift(session: AsyncSession, ctx: IngestContext, principal: Principal, shift_id: uuid.UUID) -> Shift:
    shift = await session.get(Shift, shift_id, with_for_update=True)
    if shift is None or not _may_manage(principal, shift):
        raise NotFound("no such shift")
    if shift.ended_at is None:
        now = now_utc()
        if shift.expires_at <= now:
            shift.ended_at, shift.end_reason = shift.expires_at, "expired"
        else:
            shift.ended_at, shift.end_reason = now, "logout"
        await session.flush()
    ctx.forget_unit(shift.unit, shift.agency)
    return shift


async def open_shift(
    ctx: IngestContext, unit: str, agency: str | None = None, *, max_age_s: float = 1.0
) -> Shift | None:
    """The agency's unit's open shift, cached a second per process (one query per unit however many requests
    wait); the writer re-checks it in the read's own transaction."""
    key = _unit_key(unit, agency)
    cached = ctx._open_shifts.get(key)
    if cached is None or time.monotonic() - cached[0] >= max_age_s:
        lock = ctx._shift_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = ctx._open_shifts.get(key)
            if cached is None or time.monotonic() - cached[0] >= max_age_s:
                async with ctx.sessionmaker() as session:
                    found = (
                        await session.execute(
                            select(Shift).where(
                                Shift.unit == unit,  # type: ignore[arg-type]
                                Shift.agency.is_not_distinct_from(agency),  # type: ignore[union-attr]
                                Shift.ended_at.is_(None),  # type: ignore[union-attr]
                            )
                        )
                    ).scalar_one_or_none()
                cached = (time.monotonic(), found)
                ctx._open_shifts[key] = cached
    shift = cached[1]
    if shift is None or shift.expires_at <= now_utc():
        return None
    return shift


async def shift_covering(ctx: IngestContext, unit: str, at: datetime, agency: str | None = None) -> Shift | None:
    """The shift of `unit` during which `at` fell (queued reads uploaded later)."""
    skew = timedelta(seconds=ctx.settings.ingest_clock_skew_s)
    async with ctx.sessionmaker() as session:
        return (
            await session.execute(
                select(Shift)
                .where(
                    Shift.unit == unit,  # type: ignore[arg-type]
                    Shift.agency.is_not_distinct_from(agency),  # type: ignore[union-attr]
                    Shift.started_at - skew <= at,  # type: ignore[operator]
                    text("least(coalesce(ingest.shifts.ended_at, 'infinity'), ingest.shifts.expires_at) >= :at"),
                )
                .params(at=at)
                .order_by(Shift.started_at.desc())  # type: ignore[attr-defined]
                .limit(1)
            )
        ).scalar_one_or_none()


# ---- reads --------------------------------------------------------------------------------------------------


def read_id_for(agency: str, meta: ReadMetadata) -> uuid.UUID:
    at = meta.captured_at.astimezone(UTC).isoformat()
    return uuid.uuid5(READ_ID_NAMESPACE, f"{agency}\x1f{meta.unit}\x1f{meta.client_read_id}\x1f{at}")


def result_of(row: dict[str, Any], *, duplicate: bool) -> ReadResult:
    pending = [w for w, flag in (("recognition", row["recognition_pending"]), ("match", row["match_pending"])) if flag]
    hits = list(row.get("hits") or [])
    return ReadResult(
        read_id=row["id"],
        client_read_id=row["client_read_id"],
        unit=row["unit"],
        captured_at=row["captured_at"],
        status="pending" if pending else "complete",
        pending=pending,  # type: ignore[arg-type]
        duplicate=duplicate,
        plate=row["plate"],
        state=row["state"],
        plate_confidence=row["plate_confidence"],
        plate_source=row["plate_source"],
        agreement=row.get("agreement"),
        image_key=row["image_key"],
        crop_key=row["crop_key"],
        hits=hits,
        notice=HIT_NOTICE if hits else None,
    )


def check_capture_time(settings: Settings, captured_at: datetime) -> None:
    now = now_utc()
    ahead = (captured_at - now).total_seconds()
    if ahead > settings.ingest_clock_skew_s:
        raise Unprocessable(
            f"captured_at is {ahead:.0f} s in the future (clock skew allowed: {settings.ingest_clock_skew_s:.0f} s)"
        )
    if captured_at < now - timedelta(days=settings.ingest_max_read_age_days):
        raise Unprocessable(f"captured_at is older than the {settings.ingest_max_read_age_days}-day retention period")


async def find_existing(ctx: IngestContext, agency: str, meta: ReadMetadata) -> tuple[dict[str, Any] | None, bool]:
    """The stored read with this client id and capture time (Conflict when the id was used at another time), and
    whether the car's plate is a Safe at Home plate for the agency (asked in the same query)."""
    rows, protected = await ctx.existing.near(agency, meta.unit, meta.client_read_id, meta.captured_at, meta.plate)
    for row in rows:
        if row["captured_at"] == meta.captured_at:
            return row, protected
    if rows:
        raise Conflict(f"client_read_id {meta.client_read_id!r} was already used for a read at another time")
    return None, protected


def _keys(read_id: uuid.UUID, captured_at: datetime, photo: CheckedImage | None, crop: CheckedImage | None):  # type: ignore[no-untyped-def]
    # Day first: the purge deletes a day by prefix. A random part keeps a racing retry from touching our object.
    prefix = f"reads/{capture_day(captured_at):%Y/%m/%d}/{read_id}.{secrets.token_hex(4)}"
    return (
        f"{prefix}.{photo.extension}" if photo else None,
        f"{prefix}.crop.{crop.extension}" if crop else None,
    )


async def delete_quietly(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        try:
            await store.delete(key)
        except (StorageError, OSError) as exc:
            # The retention check (issue 8) finds objects without a read; the log says which.
            log.error("orphan_object_left", key=key, error=repr(exc))


async def protected_plates(ctx: IngestContext, candidates: tuple[str | None, ...], agency: str) -> set[str]:
    """Those of `candidates` that are Safe at Home plates for `agency`'s reads: batched with concurrent reads when
    ingest runs."""
    if not any(candidates):
        return set()
    if ctx.protected is not None:
        return await ctx.protected.call((agency, candidates))
    return await protected_among(ctx.engine, candidates, agency)


async def recognize(ctx: IngestContext, image: bytes, content_type: str) -> dict[str, Any] | None:
    """Recognition's best plate, None when it found none. Raises CallFailed when it is unavailable."""
    assert ctx.recognition is not None
    found = await ctx.recognition.recognize(image, content_type)
    for candidate in found:
        plate = plates.normalize(str(candidate.get("plate") or ""))
        if plates.is_plausible(plate):
            return {**candidate, "plate": plate}
    return None


def payload_of(row: dict[str, Any], alternatives: list[str], officer: str | None = None) -> dict[str, Any]:
    """What hotlist is asked about a read (its stored row and the other readings)."""
    return match_payload(
        read_id=str(row["id"]),
        plate=row["plate"],
        state=row["state"],
        alternatives=alternatives,
        agency=row["agency"] or None,
        unit=row["unit"],
        captured_at=row["captured_at"],
        officer=officer,
    )


def apply_match(row: dict[str, Any], body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hotlist's answer on the row (its list version); returns the hits for the car, and the covert hits (the list
    owner's, never the car's)."""
    row["list_version"] = body.get("list_version")
    hits = [h for h in body["hits"] if isinstance(h, dict)]
    return [h for h in hits if not h.get("covert")], [h for h in hits if h.get("covert")]


async def match(
    ctx: IngestContext, row: dict[str, Any], alternatives: list[str], officer: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hits for the car, and the covert hits; `officer`: the shift's, carried on the hit. Raises CallFailed."""
    assert ctx.hotlist is not None
    payload = payload_of(row, alternatives, officer)
    if ctx.matches is not None:
        body = await ctx.matches.call(payload)
    else:
        body = (await ctx.hotlist.match_many([payload]))[0]
    return apply_match(row, body)


def alternatives_for(candidate: dict[str, Any] | None, car_plate: str | None, plate: str | None) -> list[str]:
    alts = [plates.normalize(str(a.get("plate") or "")) for a in (candidate or {}).get("alternatives") or []]
    if car_plate:
        alts.append(car_plate)
    return [a for a in dict.fromkeys(alts) if a and a != plate][:8]


def wants_recognition(settings: Settings, meta_plate: str | None, photo: CheckedImage | None) -> bool:
    return bool(photo and settings.ingest_call_recognition and (meta_plate is None or settings.ingest_second_read))


async def ingest_read(
    ctx: IngestContext,
    principal: Principal,
    meta: ReadMetadata,
    photo: CheckedImage | None,
    crop: CheckedImage | None,
    *,
    queued: bool = False,
) -> ReadResult:
    """Store one read once, and recognise and match it when the other services answer in time.

    `queued`: a read the car kept while offline; it must fall in one of the unit's shifts, not the open one."""
    with ctx.inflight:
        return await _ingest_read(ctx, principal, meta, photo, crop, queued=queued)


async def _ingest_read(
    ctx: IngestContext,
    principal: Principal,
    meta: ReadMetadata,
    photo: CheckedImage | None,
    crop: CheckedImage | None,
    *,
    queued: bool,
) -> ReadResult:
    settings = ctx.settings
    check_capture_time(settings, meta.captured_at)
    if photo is None and meta.plate is None:
        raise Unprocessable("a read needs a photo or the car's plate text")
    shift = (
        await shift_covering(ctx, meta.unit, meta.captured_at, principal.agency)
        if queued
        else await open_shift(ctx, meta.unit, principal.agency)
    )
    if shift is None:
        if queued:
            raise Conflict(f"unit {meta.unit} had no shift at {meta.captured_at.isoformat()}")
        # Off the hot path (no shift): a suspension ended the shift, and the car is told so.
        await refuse_if_suspended(ctx.engine, principal.agency)
        raise Conflict(f"unit {meta.unit} is offline: no open shift")
    if shift.officer != principal.subject:
        raise Forbidden(f"unit {meta.unit}'s shift belongs to another officer")
    if shift.cameras and meta.camera not in shift.cameras:
        raise Unprocessable(f"camera {meta.camera!r} is not one of unit {meta.unit}'s cameras for this shift")
    agency = shift.agency or ""

    existing, car_plate_protected = await find_existing(ctx, agency, meta)
    if existing is not None:
        return result_of(existing, duplicate=True)

    read_id = read_id_for(agency, meta)
    image_key, crop_key = _keys(read_id, meta.captured_at, photo, crop)
    # A Safe at Home participant's photo is not even uploaded when the car sent the plate.
    items = [] if car_plate_protected else [(k, i) for k, i in ((image_key, photo), (crop_key, crop)) if k and i]
    uploads = _Uploads(ctx.store, items)
    try:
        outcome, covert, row = await _checked_and_stored(
            ctx, meta, photo, crop, shift, agency, read_id, (image_key, crop_key), uploads, queued, car_plate_protected
        )
    except BaseException:
        await uploads.discard()  # refused, 503 or cancelled: no photo left without its read
        raise
    if outcome is None:
        return result_of({**row, "image_key": None, "crop_key": None}, duplicate=False)
    if not outcome.inserted:
        await uploads.discard()  # a racing retry stored it first: keep only its objects
    elif row["hits"] or covert:
        await deliver_hits(ctx, [*row["hits"], *covert], row)
    return result_of(outcome.row, duplicate=not outcome.inserted)


class _Uploads:
    """A read's photo and crop going into the object store while its Safe at Home check and match go on. Awaited
    one after the other, the uploads let reads out one by one and every later batch (Safe at Home check, match call,
    commit) held one or two of them: the photo path paid those per read (issue 18). A match made for a read whose
    upload then fails is answered 503 like any outage; hotlist keeps the hit once (by read id) for the car's retry."""

    def __init__(self, store: ObjectStore, items: list[tuple[str, CheckedImage]]) -> None:
        self.store = store
        self.stored: list[str] = []
        self._task = asyncio.ensure_future(self._put_all(items)) if items else None

    async def _put_all(self, items: list[tuple[str, CheckedImage]]) -> BaseException | None:
        async def put(key: str, img: CheckedImage) -> None:
            await self.store.put(key, img.data, img.content_type)
            self.stored.append(key)

        results = await asyncio.gather(*(put(k, img) for k, img in items), return_exceptions=True)
        return next((r for r in results if isinstance(r, BaseException)), None)

    async def done(self) -> None:
        """Once every object is stored; Unavailable when one could not be (the caller discards the rest)."""
        failed = await asyncio.shield(self._task) if self._task is not None else None
        if failed is not None:
            log.warning("object_store_failed", error=repr(failed))
            raise Unavailable("object store unavailable, retry later")

    async def discard(self) -> None:
        """The read is not stored (or another copy was): its objects go, once their uploads have ended."""
        if self._task is not None:
            # Shielded: a cancelled request still waits for its uploads, so none is left behind unnamed.
            await asyncio.shield(self._task)
        stored, self.stored = self.stored, []
        await delete_quietly(self.store, stored)


async def _checked_and_stored(
    ctx: IngestContext,
    meta: ReadMetadata,
    photo: CheckedImage | None,
    crop: CheckedImage | None,
    shift: Shift,
    agency: str,
    read_id: uuid.UUID,
    keys: tuple[str | None, str | None],
    uploads: _Uploads,
    queued: bool,
    car_plate_protected: bool,
) -> tuple[WriteOutcome | None, list[dict[str, Any]], dict[str, Any]]:
    """Recognise, check, match and store the read, its uploads going on meanwhile. None: a Safe at Home plate's
    read, destroyed at collection (its objects are gone)."""
    settings = ctx.settings
    image_key, crop_key = keys
    row: dict[str, Any] = {
        "id": read_id,
        "captured_at": meta.captured_at,
        "received_at": now_utc(),
        "agency": agency,
        "unit": meta.unit,
        "shift_id": shift.id,
        "camera": meta.camera,
        "client_read_id": meta.client_read_id,
        "lat": meta.lat,
        "lon": meta.lon,
        # Minn. Stat. 13.824 subd. 2(a) allows plate, date, time, location and pictures: the car's heading and
        # speed are accepted (MDCs send them) and never stored, as camera agents' extra fields are dropped.
        "heading": None,
        "speed": None,
        "plate": meta.plate,
        "plate_confidence": meta.plate_confidence,
        "state": meta.state,
        "plate_source": "car" if meta.plate else None,
        "car_plate": None,
        "agreement": None,
        "image_key": image_key,
        "crop_key": crop_key,
        "recognition_pending": False,
        "match_pending": False,
        "attempts": 0,
        "last_error": None,
        "list_version": None,
        "hits": [],
    }
    candidate: dict[str, Any] | None = None
    covert: list[dict[str, Any]] = []
    if wants_recognition(settings, meta.plate, photo):
        assert photo is not None
        if ctx.recognition is None:
            row["recognition_pending"] = True
        else:
            # Stored first: during an object-store outage no photo costs recognition's CPU only to be refused.
            await uploads.done()
            try:
                candidate = await recognize(ctx, (crop or photo).data, (crop or photo).content_type)
            except CallFailed as exc:
                row["recognition_pending"], row["last_error"] = True, str(exc)
            else:
                apply_recognition(row, candidate)
    if car_plate_protected:
        protected = True
    elif row["plate"] == meta.plate and row["car_plate"] is None:
        protected = False  # the car's plate, checked with the idempotency lookup
    else:  # recognition read another plate
        protected = bool(await protected_plates(ctx, (row["plate"], row["car_plate"]), row["agency"] or ""))
    if protected:
        # A Safe at Home participant's plate: destroyed at collection, no alert (Minn. Stat. 13.824 subd. 3(c)).
        # Nothing is stored; the car's answer looks like any read without a hit, so it tells nobody why.
        await uploads.discard()
        log.info("read_destroyed_at_collection", reason="protected_plate")
        return None, covert, row
    if settings.ingest_call_hotlist and (row["plate"] or row["recognition_pending"]):
        if row["plate"] is None or ctx.hotlist is None:
            row["match_pending"] = True
        else:
            try:
                row["hits"], covert = await match(
                    ctx, row, alternatives_for(candidate, row["car_plate"], row["plate"]), shift.officer
                )
                with_agreement(row["hits"], row)
            except CallFailed as exc:
                row["match_pending"], row["last_error"] = True, str(exc)
    row["confusion_key"] = plates.confusion_key(row["plate"]) if row["plate"] else None
    await uploads.done()  # answered only once the photo is stored too
    return await ctx.writer.submit(row, require_active=not queued), covert, row


async def deliver_hits(ctx: IngestContext, hits: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Once the read is stored, its hits go to the streams too: the car's hits to its unit's stream (a car that lost
    the HTTP answer still learns of them; it dedupes by hit id), covert hits to the list owner's agency stream.
    Hotlist keeps every hit, so a failure here loses no hit, only its notice: it is logged, the read is answered."""
    try:
        async with ctx.sessionmaker() as session:
            added = await add_hit_events(session, hits, row)
            await session.commit()
    except Exception as exc:  # noqa: BLE001 - the read is stored; the hit is kept at hotlist
        log.error("hit_notice_failed", read_id=str(row["id"]), error=repr(exc))
        return
    if added:
        ctx.hub.notify()


def apply_recognition(row: dict[str, Any], candidate: dict[str, Any] | None) -> None:
    """Put recognition's reading on the row; the car's own reading, if any, is kept beside it."""
    if candidate is None:
        return
    if row["plate"] and row["plate"] != candidate["plate"]:
        row["car_plate"] = row["plate"]
    row["plate"] = candidate["plate"]
    row["plate_confidence"] = candidate.get("confidence")
    row["state"] = candidate.get("state") or row["state"]
    row["plate_source"] = "recognition"
    row["agreement"] = candidate.get("agreement")


def with_agreement(hits: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """Each hit says whether recognition's two readers agreed on the reading it was matched on, so the officer's
    screen can say "two readers agree" (or that only one read it): a hit on an agreed reading is near-certain."""
    for hit in hits:
        hit["agreement"] = row.get("agreement")

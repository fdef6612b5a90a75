"""Routes of the ingest service: shifts, reads (single and batch), the cars' hit stream, internal endpoints."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.types import Scope as AsgiScope

from services.ingest import metrics, service, stream_events
from services.ingest import search as search_logic
from services.ingest.agents.importer import dispatch_unit
from services.ingest.deliveries import audit_hits_delivered
from services.ingest.deps import AgencyReader, Ctx, Officer, Overseer, Service, ShiftReader, StreamReader, get_ctx
from services.ingest.images import CheckedImage, check_image
from services.ingest.models import Shift
from services.ingest.schemas import (
    BatchItem,
    BatchItemResult,
    BatchResult,
    HitsAccepted,
    HitsIn,
    ReadMetadata,
    ReadResult,
    SearchRequest,
    SearchResponse,
    ShiftList,
    ShiftOut,
    ShiftStart,
    StreamEventOut,
    StreamPage,
)
from services.ingest.service import IngestContext
from services.ingest.writer import READS
from shared.acting_for import acting_for_grant
from shared.audit import client_ip, record
from shared.auth import ADMIN, OFFICER, SUPERVISOR, Principal, authenticated
from shared.bounds import INT64_MAX
from shared.db import SessionDep
from shared.errors import AppError, BadRequest, Conflict, Forbidden, PayloadTooLarge, Unprocessable
from shared.fastpath import Handler, route_path
from shared.limits import lower_body_limit
from shared.revocations import RevocationList
from shared.scoping import Scope, Scoped
from shared.service_callers import HOTLIST_ONLY, check_caller

router = APIRouter()

_MULTIPART_SLACK = 64 * 1024  # metadata and multipart framing on top of the images


# ---- shifts -------------------------------------------------------------------------------------------------


@router.post("/v1/shifts", tags=["shifts"], status_code=201, summary="Log in to a unit: the unit goes online")
async def start_shift(body: ShiftStart, principal: Officer, ctx: Ctx, session: SessionDep) -> ShiftOut:
    shift = await service.start_shift(session, ctx, principal, body)
    return service.shift_out(shift)


@router.post("/v1/shifts/{shift_id}/end", tags=["shifts"], summary="Log out: the unit goes offline")
async def end_shift(shift_id: uuid.UUID, principal: ShiftReader, ctx: Ctx, session: SessionDep) -> ShiftOut:
    shift = await service.end_shift(session, ctx, principal, shift_id)
    return service.shift_out(shift)


@router.get("/v1/shifts/{shift_id}", tags=["shifts"], summary="One shift")
async def get_shift(shift_id: uuid.UUID, principal: ShiftReader, session: SessionDep) -> ShiftOut:
    return service.shift_out(await service.get_shift(session, principal, shift_id))


@router.get("/v1/shifts", tags=["shifts"], summary="Shift intervals: when each unit's readers collected data")
async def list_shifts(
    principal: Overseer,
    session: SessionDep,
    unit: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = Query(default=500, ge=1, le=5000),
) -> ShiftList:
    stmt = select(Shift).order_by(Shift.started_at)  # type: ignore[arg-type]
    if unit:
        stmt = stmt.where(Shift.unit == unit)  # type: ignore[arg-type]
    stmt = stmt.where(func.coalesce(Shift.agency, "") == Scope(principal).agency)
    if start:
        stmt = stmt.where((Shift.ended_at.is_(None)) | (Shift.ended_at >= start))  # type: ignore[union-attr,operator]
    if end:
        stmt = stmt.where(Shift.started_at < end)  # type: ignore[operator]
    shifts = (await session.execute(stmt.limit(limit))).scalars()
    return ShiftList(shifts=[service.shift_out(s) for s in shifts])


# ---- reads --------------------------------------------------------------------------------------------------


def _metadata(raw: str | bytes | None, model: type[ReadMetadata] = ReadMetadata, loc: str = "metadata") -> Any:
    if raw is None:
        raise Unprocessable(f"{loc}: missing (a JSON object)")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": (loc, *e.get("loc", ()))} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


def _content_length(request: Request, limit: int) -> None:
    # Checked on Content-Length now, and counted while the body streams (a chunked body has no length).
    lower_body_limit(request, limit)


async def _image(part: Any, *, field: str, max_bytes: int, max_pixels: int) -> CheckedImage | None:
    if part is None:
        return None
    if isinstance(part, UploadFile):
        part = await part.read(max_bytes + 1)
    if not isinstance(part, bytes):
        raise Unprocessable(f"{field}: must be a file part")
    if len(part) > max_bytes:
        raise PayloadTooLarge(f"{field}: over the limit of {max_bytes} bytes")
    if len(part) > 256 * 1024:  # a large image's header walk goes off the event loop
        return await asyncio.to_thread(check_image, part, field=field, max_pixels=max_pixels)
    return check_image(part, field=field, max_pixels=max_pixels)


def _answer(result: ReadResult) -> Response:
    # Serialized once, by pydantic's Rust encoder (model_dump then json.dumps walks the answer twice).
    return Response(
        result.model_dump_json(),
        status_code=202 if result.status == "pending" else 200,
        media_type="application/json",
    )


_READ_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["metadata"],
                    "properties": {
                        "metadata": {"type": "string", "description": "ReadMetadata as JSON"},
                        "photo": {"type": "string", "format": "binary", "description": "JPEG or PNG"},
                        "crop": {"type": "string", "format": "binary", "description": "plate crop, JPEG or PNG"},
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/ReadMetadata"}},
        },
    }
}


@router.post(
    "/v1/reads",
    tags=["reads"],
    response_model=ReadResult,
    summary="Post a plate read (200: stored and matched; 202: stored, recognition or match still pending)",
    responses={202: {"model": ReadResult, "description": "stored; work pending, hits come on the stream"}},
    openapi_extra=_READ_BODY,
)
async def post_read(request: Request, principal: Officer, ctx: Ctx) -> Response:
    return await answer_read(request, principal, ctx)


def read_beside_the_router(scope: AsgiScope) -> Handler | None:
    """`POST /v1/reads` answered beside the router (`fastpath`): the route's dependencies called directly."""
    if scope["method"] != "POST" or route_path(scope) != "/v1/reads":
        return None
    return _post_read_beside


async def _post_read_beside(request: Request) -> Response:
    principal = await authenticated(request, OFFICER)
    return await answer_read(request, principal, await get_ctx(request))


async def answer_read(request: Request, principal: Principal, ctx: IngestContext) -> Response:
    settings = ctx.settings
    _content_length(request, settings.ingest_max_photo_bytes + settings.ingest_max_crop_bytes + _MULTIPART_SLACK)
    ctype = request.headers.get("content-type", "")
    photo = crop = None
    if ctype.startswith("application/json"):
        meta = _metadata(await request.body())
    elif ctype.startswith("multipart/form-data"):
        async with request.form(max_files=2, max_fields=1) as form:
            unknown = set(form.keys()) - {"metadata", "photo", "crop"}
            if unknown:
                raise Unprocessable(f"unknown form fields: {sorted(unknown)} (metadata, photo, crop)")
            raw = form.get("metadata")
            meta = _metadata(raw if isinstance(raw, str) else None)
            pixels = settings.ingest_max_image_pixels
            photo = await _image(
                form.get("photo"), field="photo", max_bytes=settings.ingest_max_photo_bytes, max_pixels=pixels
            )
            crop = await _image(
                form.get("crop"), field="crop", max_bytes=settings.ingest_max_crop_bytes, max_pixels=pixels
            )
    else:
        raise BadRequest("send multipart/form-data (metadata, photo, crop) or application/json (metadata only)")
    return _answer(await metrics.counted(service.ingest_read(ctx, principal, meta, photo, crop)))


@router.post(
    "/v1/reads/batch",
    tags=["reads"],
    summary="Upload reads queued while the car was offline; each item is answered",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["items"],
                        "properties": {
                            "items": {"type": "string", "description": "JSON list of ReadMetadata"},
                        },
                        "description": "files `photo:<client_read_id>` and `crop:<client_read_id>` beside items",
                    }
                }
            },
        }
    },
)
async def post_batch(request: Request, principal: Officer, ctx: Ctx) -> BatchResult:
    settings = ctx.settings
    cap = settings.ingest_batch_max_items
    _content_length(
        request, cap * (settings.ingest_max_photo_bytes + settings.ingest_max_crop_bytes) + _MULTIPART_SLACK
    )
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequest("send multipart/form-data: `items` (JSON list) and files photo:<id>, crop:<id>")
    async with request.form(max_files=2 * cap, max_fields=1, max_part_size=4 * 1024 * 1024) as form:
        raw = form.get("items")
        if not isinstance(raw, str):
            raise Unprocessable("items: missing (a JSON list of read metadata)")
        try:
            items = json.loads(raw)
        except ValueError:
            raise Unprocessable("items: not JSON") from None
        if not isinstance(items, list) or not items:
            raise Unprocessable("items: must be a non-empty JSON list")
        if len(items) > cap:
            raise PayloadTooLarge(f"items: {len(items)} reads, at most {cap} per batch")
        # Read once: a retried item in the same batch names the same part.
        limit = max(settings.ingest_max_photo_bytes, settings.ingest_max_crop_bytes) + 1
        files = {k: await v.read(limit) for k, v in form.multi_items() if isinstance(v, UploadFile)}
        gate = asyncio.Semaphore(8)

        async def one(item: Any) -> BatchItemResult:
            cid = item.get("client_read_id") if isinstance(item, dict) else None
            cid = cid if isinstance(cid, str) else None
            try:
                meta = BatchItem.model_validate(item)
                pixels = settings.ingest_max_image_pixels
                photo = await _image(
                    files.get(f"photo:{meta.client_read_id}"),
                    field=f"photo:{meta.client_read_id}",
                    max_bytes=settings.ingest_max_photo_bytes,
                    max_pixels=pixels,
                )
                crop = await _image(
                    files.get(f"crop:{meta.client_read_id}"),
                    field=f"crop:{meta.client_read_id}",
                    max_bytes=settings.ingest_max_crop_bytes,
                    max_pixels=pixels,
                )
                async with gate:
                    result = await metrics.counted(service.ingest_read(ctx, principal, meta, photo, crop, queued=True))
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False)
                detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
                return BatchItemResult(client_read_id=cid, status_code=422, detail=detail)
            except AppError as exc:
                return BatchItemResult(client_read_id=cid, status_code=exc.status_code, detail=exc.detail)
            return BatchItemResult(
                client_read_id=cid, status_code=202 if result.status == "pending" else 200, result=result
            )

        results = await asyncio.gather(*(one(item) for item in items))
    return BatchResult(results=list(results))


# ---- the cars' stream ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamAccess:
    """What let the caller in: the unit's agency, the earliest time it may see, and for an officer the shift it
    was admitted under (its stream carries that shift's hits only, and ends with it)."""

    agency: str | None
    floor: datetime
    shift_id: uuid.UUID | None = None


async def _stream_access(
    ctx: Ctx, session: AsyncSession, request: Request, principal: Principal, unit: str
) -> StreamAccess:
    """The unit's agency and the earliest time the caller may see, when it may follow the unit's stream: its
    officer on shift, or a supervisor of its agency. Live events of the open shift only, never history (a look at
    past events is a search under a grant, through the access workflow); a supervisor's look is audited."""
    shift = await service.open_shift(ctx, unit, principal.agency)
    supervisor = principal.has_role(SUPERVISOR, ADMIN)
    if shift is not None:
        agency, floor, shift_id = shift.agency, shift.started_at, str(shift.id)
    elif supervisor and principal.agency and unit == dispatch_unit(principal.agency):
        # The agency's dispatch stream (fixed readers have no car, no shift): the last shift's length of it.
        agency, floor, shift_id = (
            principal.agency,
            service.now_utc() - timedelta(hours=ctx.settings.ingest_shift_max_hours),
            "",
        )
    else:
        # Another agency's unit of that name is not ours to see: the same answer as an offline one.
        raise Conflict(f"unit {unit} is offline: no open shift in your agency")
    if supervisor:
        await Scope(principal).audit(
            session,
            service="ingest",
            action="stream.follow",
            object_type="unit",
            object_ids=[unit],
            source_ip=client_ip(request),
            details={"shift_id": shift_id, "since": floor.isoformat()},
        )
        await session.commit()
        return StreamAccess(agency, floor)
    if shift is None or shift.officer != principal.subject:
        raise Forbidden(f"unit {unit}'s shift belongs to another officer")
    return StreamAccess(agency, floor, shift.id)


async def _token_denial(ctx: Ctx, request: Request, principal: Principal) -> str | None:
    """Why the caller's token no longer opens the stream (expired, revoked), or None. In memory: the revocation
    list re-reads its table once per `revocation_refresh_s` for the whole process."""
    # Expired as a new request finds it (python-jose: whole seconds, past the leeway): a stream ending earlier would
    # only reconnect and be let in again.
    expires_at = principal.expires_at
    if expires_at is not None and expires_at.timestamp() < int(time.time()) - ctx.settings.jwt_leeway_s:
        return "token expired: log in again"
    revocations: RevocationList | None = getattr(request.app.state, "revocations", None)
    if revocations is not None:
        try:
            await revocations.check(principal)
        except AppError as exc:  # revoked (401), or the list unreadable for too long (503): stop either way
            return str(exc.detail)
    return None


async def _stream_denial(
    ctx: Ctx, request: Request, principal: Principal, unit: str, access: StreamAccess
) -> str | None:
    """`_token_denial`, and for an officer whether the shift it came in under is still open and still theirs."""
    denial = await _token_denial(ctx, request, principal)
    if denial is None and access.shift_id is not None:
        shift = await service.open_shift(ctx, unit, access.agency)  # cached a second, shared by the unit's streams
        if shift is None or shift.id != access.shift_id or shift.officer != principal.subject:
            denial = f"shift ended: unit {unit}'s shift {access.shift_id} is no longer open"
    return denial


def _event_out(e: Any) -> StreamEventOut:
    return StreamEventOut(id=e.id, kind=e.kind, created_at=e.created_at, unit=e.unit, payload=e.payload)


@router.get("/v1/units/{unit}/events", tags=["stream"], summary="Hits and hot-list notices after `since` (polling)")
async def poll_events(
    unit: str,
    request: Request,
    principal: StreamReader,
    scope: Scoped,
    ctx: Ctx,
    session: SessionDep,
    since: int = Query(default=0, ge=0, le=INT64_MAX, description="the last event id the car has"),
    limit: int = Query(default=100, ge=1, le=500),
) -> StreamPage:
    access = await _stream_access(ctx, session, request, scope.principal, unit)
    events = await stream_events.events_since(
        session, unit, access.agency, since, limit, not_before=access.floor, shift_id=access.shift_id
    )
    await audit_hits_delivered(session, scope, events, via="poll", source_ip=client_ip(request))
    return StreamPage(events=[_event_out(e) for e in events], last_id=events[-1].id if events else since)


@router.get(
    "/v1/agencies/{agency}/events",
    tags=["stream"],
    summary="Covert hits on the lists this agency owns (its supervisors; never a car)",
)
async def agency_events(
    agency: str,
    request: Request,
    principal: AgencyReader,
    scope: Scoped,
    session: SessionDep,
    since: int = Query(default=0, ge=0, le=INT64_MAX, description="the last event id the caller has"),
    limit: int = Query(default=100, ge=1, le=500),
) -> StreamPage:
    if not scope.owns(agency):
        raise Forbidden(f"agency {agency}'s covert hits are for its own supervisors")
    events = await stream_events.agency_events_since(session, agency, since, limit)
    await scope.audit(
        session,
        service="ingest",
        action="stream.agency_events",
        object_type="read",
        object_ids=[str(e.read_id) for e in events if e.read_id][:100],
        source_ip=client_ip(request),
        record_count=len(events),
    )
    return StreamPage(events=[_event_out(e) for e in events], last_id=events[-1].id if events else since)


@router.get(
    "/v1/units/{unit}/stream",
    tags=["stream"],
    summary="Server-Sent Events: hits for this unit and hot-list update notices",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    unit: str,
    request: Request,
    principal: StreamReader,
    scope: Scoped,
    ctx: Ctx,
    since: int | None = Query(
        default=None, ge=0, le=INT64_MAX, description="replay events after this id (default: new only)"
    ),
    max_events: int | None = Query(default=None, ge=1, le=INT64_MAX, description="close after this many events"),
    keepalive_s: float = Query(default=15.0, ge=0.1, le=60),
) -> StreamingResponse:
    async with ctx.sessionmaker() as session:
        access = await _stream_access(ctx, session, request, scope.principal, unit)
    last_header = request.headers.get("last-event-id")
    if since is None and last_header and last_header.isdigit():
        since = int(last_header)
        if since > INT64_MAX:  # refused now, not a 200 that drops once the stream queries it (and a reconnect loop)
            raise Unprocessable(f"Last-Event-ID {last_header[:30]} is not an event id")
    if since is None:
        async with ctx.sessionmaker() as session:
            since = await stream_events.last_event_id(session)
    start_id: int = since
    recheck_s = ctx.settings.revocation_refresh_s

    def end(detail: str) -> str:
        return f"event: end\ndata: {json.dumps({'detail': detail})}\n\n"

    async def events() -> AsyncIterator[str]:
        # Access is re-checked while the stream is open, not only when it opened: the token (expiry, revocation:
        # logout, a disabled user) and, for an officer, the shift it came in under. Each refresh period in full,
        # and the token before each event; on failure a last `end` event says why and the stream closes.
        last, sent = start_id, 0
        idle = 0.0
        checked = time.monotonic()
        yield "retry: 2000\n\n"
        while not ctx.hub.closed:
            if time.monotonic() - checked >= recheck_s:
                denial = await _stream_denial(ctx, request, scope.principal, unit, access)
                if denial is not None:
                    yield end(denial)
                    return
                checked = time.monotonic()
            async with ctx.sessionmaker() as session:
                batch = await stream_events.events_since(
                    session, unit, access.agency, last, not_before=access.floor, shift_id=access.shift_id
                )
            for e in batch:
                denial = await _token_denial(ctx, request, scope.principal)
                if denial is not None:
                    yield end(denial)
                    return
                data = _event_out(e).model_dump_json()
                yield f"id: {e.id}\nevent: {e.kind}\ndata: {data}\n\n"
                if e.kind == "hit":  # sent: its audit entry (hits are rare; hot-list notices are not entries)
                    async with ctx.sessionmaker() as session:
                        await audit_hits_delivered(session, scope, [e], via="stream", source_ip=client_ip(request))
                        await session.commit()
                last, sent = e.id, sent + 1
                if max_events is not None and sent >= max_events:
                    return
            if batch:
                idle = 0.0
                continue
            if await request.is_disconnected():
                return
            wait_s = min(ctx.settings.ingest_stream_poll_s, recheck_s)
            await ctx.hub.wait(wait_s)
            idle += wait_s
            if idle >= keepalive_s:
                idle = 0.0
                yield ": keepalive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


# ---- internal (docs/contracts.md) ---------------------------------------------------------------------------


@router.post("/v1/internal/reads/search", tags=["internal"], summary="Archived reads (access, inside a grant)")
async def internal_search(
    body: SearchRequest,
    request: Request,
    principal: Service,
    scope: Scoped,
    session: SessionDep,
) -> SearchResponse:
    # Called by access only, with a token it signed for this query under a grant it checked (shared/acting_for.py):
    # the grant's agency's reads only.
    grant = await acting_for_grant(request, principal)
    result = await search_logic.search(session, body.model_copy(update={"agency": grant.agency}))
    await record(
        session,
        service="ingest",
        action="reads.search",
        principal=principal,
        object_type="read",
        object_ids=[str(r.read_id) for r in result.reads],
        source_ip=client_ip(request),
        record_count=len(result.reads),
        grant_id=grant.grant_id,
        details={
            "plates": body.plates,
            "misread_tolerant": body.misread_tolerant,
            "start": body.start.isoformat(),
            "end": body.end.isoformat(),
            "area": body.area.model_dump() if body.area else None,
        },
    )
    return result


@router.post("/v1/internal/hits", tags=["internal"], summary="Late hits for the cars' streams")
async def internal_hits(body: HitsIn, principal: Service, ctx: Ctx, session: SessionDep) -> HitsAccepted:
    # Only hotlist files late hits: a stolen key of another service cannot push a hit onto a car's stream.
    check_caller(principal, HOTLIST_ONLY)
    ids: set[uuid.UUID] = set()
    for hit in body.hits:
        try:
            ids.add(uuid.UUID(hit.read_id))
        except ValueError:
            continue
    reads: dict[str, dict[str, Any]] = {}
    if ids:
        rows = await session.execute(select(READS).where(READS.c.id.in_(ids)))
        reads = {str(r.id): dict(r._mapping) for r in rows}
    delivered = covert = to_owner = duplicates = 0
    unknown: list[str] = []
    for hit in body.hits:
        if hit.covert and not hit.list_owner:
            covert += 1  # no owner to send it to, and never a car
            continue
        read = reads.get(hit.read_id)
        if read is None:
            unknown.append(hit.read_id)
            continue
        # The stored read's agreement (recognition's two readers) travels with its late hits too.
        added = await stream_events.add_hit_events(
            session, [{**hit.model_dump(), "agreement": read.get("agreement")}], read
        )
        if hit.covert:
            covert += 1
            to_owner += added
        else:
            delivered += added
        duplicates += 1 - added
    if delivered or to_owner:
        await session.commit()  # committed before the streams wake, so they find the events
        ctx.hub.notify()
    return HitsAccepted(
        received=len(body.hits),
        delivered=delivered,
        covert_withheld=covert,
        covert_to_owner=to_owner,
        duplicates=duplicates,
        unknown_reads=unknown,
    )

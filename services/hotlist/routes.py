"""The hotlist API: matching, list version, lists for the cars, sync, agency lists, hits."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlmodel import col, select
from starlette.types import Scope as AsgiScope

from services.hotlist import service
from services.hotlist.deps import (
    MATCHING_ROLES,
    Admins,
    Cars,
    DistributionDep,
    EngineDep,
    HitReaders,
    MatcherDep,
    Matching,
    Officers,
    SessionsDep,
    SettingsDep,
    Supervisors,
    sessions_of,
)
from services.hotlist.models import AgencyEntry, AgencyList, Hit
from services.hotlist.schemas import (
    AgencyEntryAdded,
    AgencyEntryIn,
    AgencyEntryOut,
    AgencyListIn,
    AgencyListOut,
    CarAgencyEntries,
    CarAgencyEntry,
    DispositionIn,
    DispositionOut,
    HitDetail,
    MatchBatchRequest,
    MatchBatchResponse,
    MatchRequest,
    MatchResponse,
    PendingHits,
    SyncOut,
    VerificationIn,
    VerificationOut,
    VersionOut,
)
from services.hotlist.sync import SyncFailed, sync_once
from shared.audit import client_ip, record
from shared.auth import ADMIN, OFFICER, SUPERVISOR, Principal, authenticated
from shared.bounds import INT64_MAX
from shared.db import SessionDep
from shared.errors import Conflict, Forbidden, NotFound, Unavailable, Unprocessable
from shared.fastpath import Handler, route_path
from shared.scoping import Scoped
from shared.service_callers import caller_service

router = APIRouter(tags=["hotlist"])
SERVICE = "hotlist"


@router.post("/v1/match", response_model=MatchResponse, summary="Match a read against the list and agency lists")
async def match(
    body: MatchRequest, sessions: SessionsDep, matcher: MatcherDep, settings: SettingsDep, principal: Matching
):
    return await service.match(sessions, matcher, settings, as_caller(principal, body))


@router.post(
    "/v1/match/batch", response_model=MatchBatchResponse, summary="Match many reads in one call (ingest's batches)"
)
async def match_batch(
    body: MatchBatchRequest, sessions: SessionsDep, matcher: MatcherDep, settings: SettingsDep, principal: Matching
) -> MatchBatchResponse:
    reads = [as_caller(principal, r) for r in body.reads]
    return MatchBatchResponse(results=await service.match_many(sessions, matcher, settings, reads))


def as_caller(principal: Principal, read: MatchRequest) -> MatchRequest:
    """The read matched as the caller's agency's: only ingest's service identity, matching a read for the agency
    that stored it, states another (another service's key matches as no agency). An administrator trying a plate
    learns their own agency's lists only (another agency's covert list stays unseen, no hit is filed in its name)."""
    if caller_service(principal) == "ingest":
        return read
    return read.model_copy(update={"agency": principal.agency or None})


def match_batch_beside_the_router(scope: AsgiScope) -> Handler | None:
    """`POST /v1/match/batch` with a JSON body (ingest's every batch of reads) answered beside the router
    (`shared.fastpath`); any other content type goes to the route, whose answer it is."""
    if scope["method"] != "POST" or route_path(scope) != "/v1/match/batch":
        return None
    ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    return _match_batch_beside if ctype.split(b";")[0].strip().lower() == b"application/json" else None


async def _match_batch_beside(request: Request) -> Response:
    # The token first: an unauthenticated malformed body gets 401 here where the route (which parses the body before
    # its dependencies) answers 422; for a caller with a token every answer is the route's.
    principal = await authenticated(request, *MATCHING_ROLES)
    body = _batch_body(await request.body())
    state = request.app.state
    reads = [as_caller(principal, r) for r in body.reads]
    results = await service.match_many(await sessions_of(request), state.matcher, state.settings, reads)
    return Response(MatchBatchResponse(results=results).model_dump_json(), media_type="application/json")


def _batch_body(raw: bytes) -> MatchBatchRequest:
    """The body as the route's validation takes it, refused with the same 422 (`loc` from "body")."""
    try:
        return MatchBatchRequest.model_validate_json(raw)
    except ValidationError:
        pass
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None
    except (ValueError, RecursionError):  # not text, or nested past Python's stack: FastAPI's 400
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from None
    try:
        return MatchBatchRequest.model_validate(data, from_attributes=True)  # as FastAPI validates a body
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


@router.get("/v1/hotlist/version", response_model=VersionOut, summary="The list version in force, its age")
async def version(matcher: MatcherDep, settings: SettingsDep, _: Cars) -> VersionOut:
    return service.version_out(matcher, settings)


def _current(matcher: MatcherDep) -> int:
    if matcher.snapshot is None:
        raise Unavailable("no hot list loaded yet")
    return matcher.snapshot.version


@router.get(
    "/v1/hotlist/list",
    response_class=Response,
    summary="The full list for a car (gzip CSV; ETag; 304 when unchanged)",
    responses={200: {"content": {"text/csv": {}}}, 304: {"description": "unchanged"}},
)
async def full_list(request: Request, matcher: MatcherDep, engine: EngineDep, dist: DistributionDep, _: Cars):
    version = _current(matcher)
    etag = f'"hotlist-v{version}"'
    headers = {"ETag": etag, "X-Hotlist-Version": str(version), "Cache-Control": "no-cache"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    body = await dist.full(engine, version)
    return Response(body, media_type="text/csv", headers={**headers, "Content-Encoding": "gzip"})


@router.get(
    "/v1/hotlist/delta",
    response_class=Response,
    summary="Adds and removes since a version (gzip JSON: since, version, columns, adds, removes)",
    responses={200: {"content": {"application/json": {}}}, 410: {"description": "version no longer kept"}},
)
async def delta(
    since: Annotated[int, Query(ge=1, le=INT64_MAX)],
    matcher: MatcherDep,
    engine: EngineDep,
    dist: DistributionDep,
    _: Cars,
):
    version = _current(matcher)
    if since > version:
        raise NotFound(f"version {since} is newer than the current version {version}")
    body = await dist.delta(engine, since, version)
    headers = {"Content-Encoding": "gzip", "X-Hotlist-Version": str(version), "ETag": f'"hotlist-d{since}-{version}"'}
    return Response(body, media_type="application/json", headers=headers)


CHANGE_OVERLAP_S = 10


@router.get(
    "/v1/hotlist/agency-entries",
    response_model=CarAgencyEntries,
    summary="The agency lists' entries for the cars, never covert lists (all live ones, or changes since a time)",
)
async def agency_entries(
    session: SessionDep, _: Cars, scope: Scoped, changed_since: Annotated[datetime | None, Query()] = None
) -> CarAgencyEntries:
    # Covert lists stay off the cars: their hits go to the list owner only (matching is done here on every read).
    if changed_since is not None and changed_since.tzinfo is None:
        raise Unprocessable("changed_since needs a time zone")
    as_of = datetime.now(UTC)
    query = (
        select(AgencyEntry, AgencyList)
        .join(AgencyList, col(AgencyList.id) == col(AgencyEntry.list_id))
        .where(col(AgencyList.covert).is_(False))
        .where(col(AgencyList.agency) == scope.agency)  # a list matches (and goes to) its own agency's cars only
        .order_by(col(AgencyEntry.plate))
    )
    if changed_since is None:
        query = query.where(col(AgencyEntry.removed_at).is_(None), col(AgencyEntry.expires_at) > as_of)
    else:
        # An entry that expired since is a change too, though nothing wrote it.
        query = query.where(
            (col(AgencyEntry.changed_at) > changed_since)
            | ((col(AgencyEntry.expires_at) > changed_since) & (col(AgencyEntry.expires_at) <= as_of))
        )
    rows = (await session.execute(query)).all()
    return CarAgencyEntries(
        # A change written in a transaction still open now carries an earlier time: the next call looks back a
        # little before this one, and a car takes an entry it already has again (by entry_id) at no harm.
        as_of=as_of - timedelta(seconds=CHANGE_OVERLAP_S),
        entries=[
            CarAgencyEntry(
                entry_id=e.id,
                list=lst.name,
                priority=lst.priority,
                plate=e.plate,
                state=e.state,
                reason=e.reason,
                expires_at=e.expires_at,
                live=e.removed_at is None and e.expires_at > as_of,
            )  # fmt: skip
            for e, lst in rows
        ],
    )


@router.post("/v1/hotlist/sync", response_model=SyncOut, summary="Sync from the BCA now (admin)")
async def sync_now(request: Request, engine: EngineDep, matcher: MatcherDep, settings: SettingsDep, _: Admins):
    try:
        result = await sync_once(engine, settings, trigger="api")
    except SyncFailed as exc:
        raise Unavailable({"message": str(exc), "outcome": exc.outcome, **exc.details}, retry_after_s=60) from None
    if result.outcome == "busy":
        raise Conflict("a sync is already running")
    await matcher.refresh(engine)
    return SyncOut(
        outcome=result.outcome,
        version=result.version,
        entries=result.entries,
        bad_rows=result.bad_rows,
        bad=result.bad[:100],
        unknown_codes=result.unknown_codes,
        seconds=result.seconds,
    )


# --- agency lists --------------------------------------------------------------------------------------------


@router.post("/v1/lists", response_model=AgencyListOut, status_code=201, summary="Create an agency list")
async def create_list(body: AgencyListIn, request: Request, session: SessionDep, _: Supervisors, scope: Scoped):
    lst = await service.create_list(session, body, scope)
    await scope.audit(
        session,
        service=SERVICE,
        action="hotlist.list.create",
        object_type="agency_list",
        object_ids=[lst.name],
        case_number=lst.case_number,
        source_ip=client_ip(request),
        details=body.model_dump(mode="json"),
    )
    return AgencyListOut.model_validate(lst, from_attributes=True)


@router.get("/v1/lists", response_model=list[AgencyListOut], summary="The caller's agency's lists")
async def lists(session: SessionDep, _: Supervisors, scope: Scoped) -> list[AgencyListOut]:
    rows = (
        await session.exec(scope.where(select(AgencyList), col(AgencyList.agency)).order_by(col(AgencyList.name)))
    ).all()
    return [AgencyListOut.model_validate(r, from_attributes=True) for r in rows]


@router.post(
    "/v1/lists/{name}/entries",
    response_model=AgencyEntryAdded,
    status_code=201,
    summary="Add an entry (case number, reason, owner, expiry); it matches the agency's reads from now on",
)
async def add_entry(
    name: str,
    body: AgencyEntryIn,
    request: Request,
    session: SessionDep,
    engine: EngineDep,
    matcher: MatcherDep,
    _: Supervisors,
    scope: Scoped,
):
    lst = await service.get_list(session, scope, name)
    entry = await service.add_entry(session, lst, body, scope.principal)
    await scope.audit(
        session,
        service=SERVICE,
        action="hotlist.entry.add",
        object_type="agency_entry",
        object_ids=[str(entry.id)],
        case_number=entry.case_number,
        source_ip=client_ip(request),
        details={
            "list": lst.name,
            "plate": entry.plate,
            "state": entry.state,
            "reason": entry.reason,
            "owner": entry.owner,
            "expires_at": entry.expires_at.isoformat(),
        },
    )
    await session.commit()  # the entry with its audit entry; it matches in every worker from the next refresh on
    await matcher.refresh(engine)
    # Past reads are not matched here: that would be a location history without a request (see create_list).
    return AgencyEntryAdded(**service.entry_out(entry, lst).model_dump(), past_read="not_configured", past_read_hits=[])


@router.get("/v1/lists/{name}/entries", response_model=list[AgencyEntryOut], summary="A list's entries")
async def entries(
    name: str, request: Request, session: SessionDep, _: Supervisors, scope: Scoped
) -> list[AgencyEntryOut]:
    lst = await service.get_list(session, scope, name)
    rows = (
        await session.exec(
            select(AgencyEntry).where(AgencyEntry.list_id == lst.id).order_by(col(AgencyEntry.created_at))
        )
    ).all()
    await scope.audit(
        session,
        service=SERVICE,
        action="hotlist.entries.view",
        object_type="agency_list",
        object_ids=[lst.name],
        case_number=lst.case_number,
        source_ip=client_ip(request),
        record_count=len(rows),
    )
    return [service.entry_out(e, lst) for e in rows]


@router.delete("/v1/lists/{name}/entries/{entry_id}", response_model=AgencyEntryOut, summary="Remove an entry")
async def remove_entry(
    name: str,
    entry_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    engine: EngineDep,
    matcher: MatcherDep,
    principal: Supervisors,
    scope: Scoped,
):
    lst = await service.get_list(session, scope, name)
    entry = await service.remove_entry(session, lst, entry_id, principal)
    await scope.audit(
        session,
        service=SERVICE,
        action="hotlist.entry.remove",
        object_type="agency_entry",
        object_ids=[str(entry.id)],
        case_number=entry.case_number,
        source_ip=client_ip(request),
    )
    out = service.entry_out(entry, lst)
    await session.commit()
    await matcher.refresh(engine)
    return out


# --- hits ---------------------------------------------------------------------------------------------------------


def _may_see(principal: Principal, hit: Hit) -> None:
    # Inside its agency (scope.check), a covert hit is for the list owner (and the agency's admins), not the car.
    if hit.covert and not (principal.has_role(ADMIN) or principal.agency == hit.list_owner):
        raise Forbidden("covert hit: for the list owner only")


def _may_open(principal: Principal, hit: Hit) -> None:
    # 13.824 subd. 7(a): a hit's details (the read's plate, place and time) open for the unit's officer, the agency's
    # supervisors (and, covert, the list owner's admins), and otherwise only through a grant (POST /v1/reads/search).
    if principal.has_role(SUPERVISOR) or (hit.covert and principal.has_role(ADMIN)):
        return
    if principal.has_role(OFFICER) and hit.officer is not None and hit.officer == principal.subject:
        return
    raise Forbidden(
        "a hit opens for the unit's officer and the agency's supervisors; others search under a grant "
        "(POST /v1/reads/search)"
    )


@router.get("/v1/hits/pending", response_model=PendingHits, summary="Hits still without a disposition (supervisors)")
async def pending(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Supervisors,
    scope: Scoped,
    older_than_s: Annotated[float | None, Query(ge=0, le=10 * 366 * 86400)] = None,  # a time PostgreSQL can hold
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PendingHits:
    wait = settings.hotlist_disposition_due_s if older_than_s is None else older_than_s
    hits = [h for h in await service.pending_hits(session, scope, wait, limit)]
    if not principal.has_role(ADMIN):
        hits = [h for h in hits if not h.covert or principal.agency == h.list_owner]
    await record(
        session,
        service=SERVICE,
        action="hits.pending",
        principal=principal,
        object_type="hit",
        object_ids=[str(h.id) for h in hits],
        source_ip=client_ip(request),
        record_count=len(hits),
    )
    return PendingHits(older_than_s=wait, hits=[await service.hit_detail(session, h) for h in hits])


@router.get("/v1/hits/{hit_id}", response_model=HitDetail, summary="A hit with its checks and dispositions")
async def get_hit(
    hit_id: uuid.UUID, request: Request, session: SessionDep, principal: HitReaders, scope: Scoped
) -> HitDetail:
    hit = await service.get_hit(session, scope, hit_id)
    _may_see(principal, hit)
    _may_open(principal, hit)
    await record(
        session,
        service=SERVICE,
        action="hit.view",
        principal=principal,
        object_type="hit",
        object_ids=[str(hit.id)],
        source_ip=client_ip(request),
    )
    return await service.hit_detail(session, hit)


@router.post(
    "/v1/hits/{hit_id}/verification",
    response_model=VerificationOut,
    status_code=201,
    summary="Record the officer's checks; the service answers whether the entry is still current",
)
async def verify(
    hit_id: uuid.UUID, body: VerificationIn, request: Request, session: SessionDep, principal: Officers, scope: Scoped
):
    hit = await service.get_hit(session, scope, hit_id)
    _may_see(principal, hit)
    v = await service.verify(session, hit, body, principal)
    await record(
        session,
        service=SERVICE,
        action="hit.verify",
        principal=principal,
        object_type="hit",
        object_ids=[str(hit.id)],
        source_ip=client_ip(request),
        details={
            "read_accurate": v.read_accurate,
            "state_matches": v.state_matches,
            "still_current": v.still_current,
            "checked_version": v.checked_version,
        },
    )
    return service.verification_out(v)


@router.post(
    "/v1/hits/{hit_id}/dispositions",
    response_model=DispositionOut,
    status_code=201,
    summary="Valid or invalid, the action taken; final once entered (a correction names the one it corrects)",
)
async def dispose(
    hit_id: uuid.UUID, body: DispositionIn, request: Request, session: SessionDep, principal: Officers, scope: Scoped
):
    hit = await service.get_hit(session, scope, hit_id)
    _may_see(principal, hit)
    d = await service.dispose(session, hit, body, principal)
    await record(
        session,
        service=SERVICE,
        action="hit.disposition",
        principal=principal,
        object_type="hit",
        object_ids=[str(hit.id)],
        source_ip=client_ip(request),
        details={"valid": d.valid, "action": d.action, "corrects": str(d.corrects) if d.corrects else None},
    )
    return service.disposition_out(d)

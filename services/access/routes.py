"""Routes of the access service: requests, grants, reads search, disclosures, the audit log, signed objects
(sign-in, people and API clients: identity_routes.py)."""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, ValidationError
from sqlmodel import col, func, select

from services.access import events, search, workflow
from services.access.deps import (
    Auditor,
    Discloser,
    IngestDep,
    Overseer,
    Requester,
    SettingsDep,
    StoreDep,
    Supervisor,
    Viewer,
)
from services.access.models import AccessRequest, Grant, RequestVersion
from services.access.schemas import (
    AreaIn,
    AuditEntryOut,
    AuditPage,
    ChainOut,
    DecisionIn,
    DecisionOut,
    DisclosureIn,
    DisclosureOut,
    GrantOut,
    RequestIn,
    RequestOut,
    RequestSummary,
    RevokeIn,
    SearchIn,
    SearchOut,
    VersionOut,
)
from shared.audit import AuditEntry, verify_chain
from shared.audit_seal import (
    key_path,
    load_checkpoints,
    load_keys,
    load_latest,
    publish_checkpoint,
    verify_sealed,
)
from shared.auth import Principal
from shared.auth_metrics import AUTH_FAILURES
from shared.bounds import INT64_MAX
from shared.db import SessionDep
from shared.errors import BadRequest, Forbidden, NotFound, Unavailable, Unprocessable
from shared.scoping import Scoped
from shared.settings import Settings
from shared.storage import LinkViewer, ObjectNotFound, SignedLinks, StorageError

router = APIRouter()


# ---- requests ----


def _parse_request(raw: str) -> RequestIn:
    try:
        return RequestIn.model_validate_json(raw)
    except ValidationError as exc:
        raise Unprocessable(
            [{"loc": ["request", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


async def _upload(file: UploadFile | None, limit: int) -> workflow.Upload | None:
    if file is None:
        return None
    data = await file.read(limit + 1)
    return workflow.Upload(data, file.filename)


def _area(lat: float | None, lon: float | None, radius: float | None) -> AreaIn | None:
    return None if lat is None or lon is None or radius is None else AreaIn(lat=lat, lon=lon, radius_m=radius)


def _grant_out(g: Grant) -> GrantOut:
    return GrantOut(
        id=g.id, request_id=g.request_id, version=g.version, holder=g.holder, data_agency=g.data_agency,
        case_number=g.case_number,
        plates=g.plates, misread_tolerant=g.misread_tolerant, start=g.start, end=g.end,
        area=_area(g.area_lat, g.area_lon, g.area_radius_m), warrant_number=g.warrant_number,
        exigency_attestation=g.exigency_attestation, created_at=g.created_at, expires_at=g.expires_at,
        revoked_at=g.revoked_at, revoke_reason=g.revoke_reason, active=workflow.grant_active(g),
    )  # fmt: skip


def _summary(req: AccessRequest, version: RequestVersion) -> RequestSummary:
    return RequestSummary(
        id=req.id, status=req.status, current_version=req.current_version, case_number=version.case_number,
        requester=req.requester, requester_agency=req.requester_agency, filed_at=req.filed_at,
        updated_at=req.updated_at,
    )  # fmt: skip


async def _request_out(
    session: SessionDep,
    settings: Settings,
    principal: Principal,
    request: Request,
    file: workflow.RequestFile,
) -> RequestOut:
    versions = []
    documents = []
    for v in file.versions:
        url = None
        if v.court_order_key:
            viewer = LinkViewer(principal.subject, principal.agency or "", "", v.case_number)
            url = SignedLinks.from_settings(settings).url(v.court_order_key, settings.presign_ttl_s, viewer)
            documents.append(v.court_order_key)
        versions.append(
            VersionOut(
                version=v.version,
                case_number=v.case_number,
                reason=v.reason,
                suspicion_basis=v.suspicion_basis,
                legal_basis=v.legal_basis,
                plates=v.plates,
                misread_tolerant=v.misread_tolerant,
                start=v.start,
                end=v.end,
                area=_area(v.area_lat, v.area_lon, v.area_radius_m),
                warrant_number=v.warrant_number,
                exigency_attestation=v.exigency_attestation,
                court_order_sha256=v.court_order_sha256,
                court_order_url=url,
                filed_by=v.filed_by,
                filed_at=v.filed_at,
            )  # fmt: skip
        )
    await events.record(
        session, "request.view", request=request, principal=principal, object_type="access_request",
        object_ids=[str(file.request.id)], case_number=file.current.case_number,
        details={"court_order_links": documents},
    )  # fmt: skip
    return RequestOut(
        **_summary(file.request, file.current).model_dump(),
        versions=versions,
        decisions=[DecisionOut.model_validate(d, from_attributes=True) for d in file.decisions],
        grants=[_grant_out(g) for g in file.grants],
    )


@router.post(
    "/v1/requests",
    tags=["requests"],
    status_code=201,
    summary="File an ALPR data request (multipart: `request` JSON, optional `court_order` file)",
)
async def file_request(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: Requester,
    request_json: Annotated[str, Form(alias="request", description="RequestIn as JSON")],
    court_order: Annotated[UploadFile | None, File()] = None,
) -> RequestOut:
    body = _parse_request(request_json)
    upload = await _upload(court_order, settings.court_order_max_bytes)
    req = await workflow.file_request(session, store, settings, principal, request, body, upload)
    return await _request_out(session, settings, principal, request, await workflow.load(session, req.id))


@router.post(
    "/v1/requests/{request_id}/versions",
    tags=["requests"],
    status_code=201,
    summary="Amend a request: a new version (the filed ones are never edited); it waits for a decision again",
)
async def amend_request(
    request_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: Requester,
    request_json: Annotated[str, Form(alias="request")],
    court_order: Annotated[UploadFile | None, File()] = None,
) -> RequestOut:
    body = _parse_request(request_json)
    upload = await _upload(court_order, settings.court_order_max_bytes)
    req = await workflow.amend_request(session, store, settings, principal, request, request_id, body, upload)
    return await _request_out(session, settings, principal, request, await workflow.load(session, req.id))


@router.get("/v1/requests", tags=["requests"], summary="The caller's own requests and their state")
async def my_requests(session: SessionDep, principal: Requester) -> list[RequestSummary]:
    return [_summary(req, ver) for req, ver in await workflow.mine(session, principal)]


@router.get("/v1/requests/queue", tags=["requests"], summary="Pending requests for this supervisor to decide")
async def request_queue(session: SessionDep, principal: Supervisor) -> list[RequestSummary]:
    return [_summary(req, ver) for req, ver in await workflow.queue(session, principal)]


@router.get("/v1/requests/{request_id}", tags=["requests"], summary="A request: versions, decisions, grants")
async def get_request(
    request_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: Viewer,
    scope: Scoped,
) -> RequestOut:
    file = await workflow.load(session, request_id)
    if not workflow.may_view(principal, file.request):
        raise Forbidden("only the requester, the deciding supervisors and auditors see a request")
    return await _request_out(session, settings, principal, request, file)


class DecisionResult(BaseModel):
    decision: DecisionOut
    grant: GrantOut | None


@router.post(
    "/v1/requests/{request_id}/decision",
    tags=["requests"],
    summary="Approve (creating a grant) or deny a request's current version, with a written reason",
)
async def decide(
    request_id: uuid.UUID,
    body: DecisionIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Supervisor,
) -> DecisionResult:
    decision, grant = await workflow.decide(session, settings, principal, request, request_id, body)
    return DecisionResult(
        decision=DecisionOut.model_validate(decision, from_attributes=True),
        grant=_grant_out(grant) if grant else None,
    )


# ---- grants, search, disclosures ----


@router.get("/v1/grants", tags=["grants"], summary="The caller's grants")
async def my_grants(session: SessionDep, principal: Requester) -> list[GrantOut]:
    return [_grant_out(g) for g in await workflow.my_grants(session, principal)]


@router.post("/v1/grants/{grant_id}/revoke", tags=["grants"], summary="End a grant before it expires")
async def revoke_grant(
    grant_id: uuid.UUID, body: RevokeIn, request: Request, session: SessionDep, principal: Supervisor
) -> GrantOut:
    return _grant_out(await workflow.revoke_grant(session, principal, request, grant_id, body.reason))


@router.post(
    "/v1/reads/search",
    tags=["reads"],
    summary="Search archived reads inside a grant (plates with wildcards, misread-tolerant, time, area; paged)",
)
async def search_reads(
    body: SearchIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ingest: IngestDep,
    principal: Requester,
    scope: Scoped,
) -> SearchOut:
    # The grant is the door: its agency's reads only (grant.data_agency), audited, a disclosure for outsiders.
    return await search.search(session, settings, ingest, principal, request, body)


@router.post("/v1/disclosures", tags=["grants"], status_code=201, summary="Record data shared with another agency")
async def record_disclosure(
    body: DisclosureIn, request: Request, session: SessionDep, principal: Discloser
) -> DisclosureOut:
    row = await workflow.disclose(session, principal, request, body)
    return DisclosureOut.model_validate(row, from_attributes=True)


@router.get("/v1/disclosures", tags=["grants"], summary="Disclosures to outside agencies, newest first")
async def list_disclosures(
    request: Request,
    session: SessionDep,
    principal: Overseer,
    scope: Scoped,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DisclosureOut]:
    rows = await workflow.disclosures(session, scope, limit)
    await events.record(session, "disclosures.view", request=request, principal=principal, record_count=len(rows))
    return [DisclosureOut.model_validate(r, from_attributes=True) for r in rows]


# ---- audit log ----


@router.get("/v1/audit", tags=["audit"], summary="Query the audit log (auditors)")
async def query_audit(
    request: Request,
    session: SessionDep,
    principal: Auditor,
    scope: Scoped,
    action: str | None = None,
    actor: str | None = None,
    case_number: str | None = None,
    grant_id: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    # The caller's agency's entries only (the entry's agency: the actor's; none for an unattributed one, which a
    # token without an agency sees, as records without one).
    stmt = scope.where(select(AuditEntry), func.coalesce(col(AuditEntry.agency), "")).where(
        col(AuditEntry.seq) > after_seq
    )
    filters = {"action": action, "actor": actor, "case_number": case_number, "grant_id": grant_id, "outcome": outcome}
    for name, value in filters.items():
        if value is not None:
            stmt = stmt.where(getattr(AuditEntry, name) == value)
    if since is not None:
        stmt = stmt.where(col(AuditEntry.at) >= since)
    if until is not None:
        stmt = stmt.where(col(AuditEntry.at) < until)
    rows = list(await session.exec(stmt.order_by(col(AuditEntry.seq)).limit(limit)))
    await events.record(
        session, "audit.query", request=request, principal=principal, record_count=len(rows),
        details={k: v for k, v in {**filters, "since": since and since.isoformat(),
                 "until": until and until.isoformat(), "after_seq": after_seq}.items() if v is not None},
    )  # fmt: skip
    entries = [AuditEntryOut.model_validate(r, from_attributes=True) for r in rows]
    return AuditPage(entries=entries, next_after_seq=entries[-1].seq if len(entries) == limit else None)


@router.get("/v1/audit/verify", tags=["audit"], summary="Check the audit log's hash chain")
async def verify_audit(
    request: Request, session: SessionDep, settings: SettingsDep, store: StoreDep, principal: Auditor
) -> ChainOut:
    sealed = checkpoints = None
    if key_path(settings).is_file():
        # The keyed seals and the signed checkpoints too: what shows a rewrite by whoever owns the database.
        keys = await asyncio.to_thread(load_keys, settings)
        try:
            # The last round's count first, then seal and publish the tail: an entry cut since then shows.
            latest = await load_latest(store)
            before = [] if latest else await load_checkpoints(store)
            await publish_checkpoint(request.app.state.engine, store, keys)
            published = await load_checkpoints(store)
        except StorageError as exc:
            raise Unavailable("object store unavailable: the checkpoints cannot be read, retry shortly") from exc
        full = await verify_sealed(await session.connection(), keys, published, latest, before)
        ok, entries, first, reason = full.ok, full.chain.entries, full.first_broken_seq, full.reason
        sealed, checkpoints = full.sealed, full.checkpoints
    else:
        plain = await verify_chain(session)
        ok, entries, first, reason = plain.ok, plain.entries, plain.first_broken_seq, plain.reason
    await events.record(
        session, "audit.verify", request=request, principal=principal, outcome="ok" if ok else "failed",
        details={"entries": entries, "first_broken_seq": first, "sealed": sealed, "checkpoints": checkpoints},
    )  # fmt: skip
    return ChainOut(
        ok=ok, entries=entries, first_broken_seq=first, reason=reason, sealed=sealed, checkpoints=checkpoints
    )


# ---- objects of the local-folder store (presigned links) ----


@router.get(
    "/v1/objects/{key:path}",
    tags=["objects"],
    summary="An image or document by a link access signed (any store); each view is audited",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "application/pdf": {}}}},
)
async def get_object(
    key: str,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    principal: Viewer,
    scope: Scoped,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
    settings: SettingsDep,
    sub: Annotated[str, Query(max_length=200)] = "",
    agency: Annotated[str, Query(max_length=80)] = "",
    grant: Annotated[str, Query(max_length=64)] = "",
    case: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    viewer = LinkViewer(sub, agency, grant, case)
    if not sub or not SignedLinks.from_settings(settings).verify(key, expires, signature, viewer):
        # Counted, not audited one by one: nothing was shown, and a flood of bad links must not queue on the
        # audit chain's lock.
        AUTH_FAILURES.labels("access", "bad_link").inc()
        raise Forbidden("link expired or invalid")
    if principal.subject != sub or (principal.agency or "") != agency:
        # A forwarded link: it was issued to someone else, whose token must come with it.
        raise await events.refuse(
            session, Forbidden("this link was issued to another person: ask for your own"), "image.view",
            request=request, principal=principal, object_type="object", object_ids=[key],
            grant_id=grant or None, case_number=case or None,
        )  # fmt: skip
    try:
        data = await store.get(key)
    except ObjectNotFound:
        raise NotFound("object not found (destroyed at the end of its retention period?)") from None
    except ValueError:
        raise BadRequest("invalid object key") from None
    except StorageError as exc:
        raise Unavailable("object store unavailable, retry shortly") from exc
    await events.record(
        session, "image.view", request=request, principal=principal, object_type="object", object_ids=[key],
        grant_id=grant or None, case_number=case or None, details={"link_expires": expires, "bytes": len(data)},
    )  # fmt: skip
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, media_type=content_type, headers={"Cache-Control": "private, no-store"})

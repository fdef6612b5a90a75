"""Routes of the access service."""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import col, func, select

from services.access import events, identity, search, workflow
from services.access.deps import (
    Admin,
    Anyone,
    Auditor,
    Discloser,
    IngestDep,
    KeysDep,
    Overseer,
    PasswordsDep,
    Requester,
    SettingsDep,
    StoreDep,
    Supervisor,
    Viewer,
)
from services.access.models import AccessRequest, Client, Grant, RequestVersion, User
from services.access.schemas import (
    AreaIn,
    AuditEntryOut,
    AuditPage,
    ChainOut,
    ClientOut,
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
    TokenOut,
    UserOut,
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
from shared.auth import SERVICE, Principal
from shared.auth_metrics import AUTH_FAILURES
from shared.bounds import INT64_MAX
from shared.db import SessionDep
from shared.errors import BadRequest, Forbidden, NotFound, Unavailable, Unprocessable
from shared.keys import public_jwks
from shared.scoping import Scope, Scoped
from shared.settings import Settings
from shared.storage import LinkViewer, ObjectNotFound, SignedLinks, StorageError
from shared.text import CleanInput

router = APIRouter()


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify our tokens")
async def jwks(request: Request) -> dict[str, Any]:
    # Read per request: a rotated key is served without a restart (verifiers cache it).
    keys: dict[str, Any] = await asyncio.to_thread(public_jwks, request.app.state.settings.keys_dir)
    return keys


# ---- tokens ----


@router.post(
    "/v1/token",
    tags=["auth"],
    summary="OAuth2 token endpoint: password (+ totp), refresh_token, client_credentials grants",
    response_model=TokenOut,
    response_model_exclude_none=True,
)
async def token(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    passwords: PasswordsDep,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    totp: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> TokenOut:
    response.headers["Cache-Control"] = "no-store"
    if grant_type == "password":
        if not username or not password:
            raise BadRequest("the password grant needs `username` and `password`")
        issued = await identity.password_grant(
            session, settings, passwords, keys, request, username=username, password=password, totp=totp,
            throttle=request.app.state.login_throttle,
        )  # fmt: skip
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise BadRequest("the refresh_token grant needs `refresh_token`")
        issued = await identity.refresh_grant(session, settings, keys, request, refresh_token=refresh_token)
    elif grant_type == "client_credentials":
        if not client_id or not client_secret:
            raise BadRequest("the client_credentials grant needs `client_id` and `client_secret`")
        issued = await identity.client_credentials_grant(
            session, settings, keys, request, client_id=client_id, client_secret=client_secret
        )
    else:
        raise BadRequest("unsupported grant_type: use password, refresh_token or client_credentials")
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, refresh_token=issued.refresh_token)


class LogoutOut(BaseModel):
    session_ended: bool


@router.post("/v1/logout", tags=["auth"], summary="End the caller's session: its refresh tokens die")
async def logout(request: Request, session: SessionDep, principal: Anyone) -> LogoutOut:
    return LogoutOut(session_ended=await identity.logout(session, principal, request))


# ---- people (administrators) ----


async def _user_out(session: SessionDep, user: User) -> UserOut:
    return UserOut(
        id=user.id, username=user.username, badge=user.badge, full_name=user.full_name, agency=user.agency,
        roles=user.roles, second_factor=user.totp_secret is not None, locked_until=user.locked_until,
        disabled=user.disabled, trained_until=await identity.trained_until(session, user.id),
    )  # fmt: skip


@router.get("/v1/users", tags=["people"], summary="People, their lock-out and training state")
async def list_users(session: SessionDep, _: Admin, scope: Scoped) -> list[UserOut]:
    # The administrator's own agency's people only: another agency's names, badges and roles are not theirs to see.
    users = await session.exec(scope.where(select(User), col(User.agency)).order_by(col(User.username)))
    return [await _user_out(session, u) for u in users]


@router.post("/v1/users/{user_id}/unlock", tags=["people"], summary="Lift a lock-out")
async def unlock_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.unlock(session, user)
    await events.record(
        session, "user.unlock", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


async def _admin_user(session: SessionDep, user_id: uuid.UUID, scope: Scope) -> User:
    """A person of the administrator's own agency: another agency's people are its administrators' to manage (a
    password reset by another agency's admin would open that agency's data to them)."""
    return scope.check(await session.get(User, user_id, with_for_update=True), "user")


@router.post(
    "/v1/users/{user_id}/disable",
    tags=["people"],
    summary="Disable a person: every session and token of theirs stops working everywhere within seconds",
)
async def disable_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.set_user_disabled(session, user, True)
    await events.record(
        session, "user.disable", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


@router.post("/v1/users/{user_id}/enable", tags=["people"], summary="Re-enable a disabled person")
async def enable_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.set_user_disabled(session, user, False)
    await events.record(
        session, "user.enable", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


class PasswordIn(CleanInput):
    password: str = Field(min_length=12, max_length=1024)


@router.post(
    "/v1/users/{user_id}/password",
    tags=["people"],
    summary="Set a person's password: their sessions and tokens end everywhere within seconds",
)
async def set_user_password(
    user_id: uuid.UUID,
    body: PasswordIn,
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    principal: Admin,
    scope: Scoped,
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.set_password(session, passwords, user, body.password)
    await events.record(
        session, "user.password", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


def _client_out(client: Client, secret: str | None = None) -> ClientOut:
    return ClientOut(
        client_id=client.client_id, name=client.name, roles=client.roles, ori=client.ori, disabled=client.disabled,
        client_secret=secret,
    )  # fmt: skip


async def _admin_client(session: SessionDep, client_id: str, scope: Scope) -> Client:
    """An outside client registered to the administrator's own agency (its ORI). The service identity is no
    account: it is provisioned on the host and rotated by the operator's CLI only, so through the API it does not
    exist (an admin who could rotate it would read every agency's data as the service)."""
    try:
        client = await identity.find_client(session, client_id, lock=True)
    except NotFound:
        raise NotFound("no such client") from None
    if SERVICE in client.roles:
        raise NotFound("no such client")
    return scope.check(client, "client", custodian=client.ori or "")


@router.post(
    "/v1/clients/{client_id}/disable",
    tags=["clients"],
    summary="Disable an API client: its tokens stop working everywhere within seconds",
)
async def disable_client(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    client = await _admin_client(session, client_id, scope)
    await identity.set_client_disabled(session, client, True)
    await events.record(
        session, "client.disable", request=request, principal=principal, object_type="client", object_ids=[client_id]
    )
    return _client_out(client)


@router.post("/v1/clients/{client_id}/enable", tags=["clients"], summary="Re-enable a disabled API client")
async def enable_client(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    client = await _admin_client(session, client_id, scope)
    await identity.set_client_disabled(session, client, False)
    await events.record(
        session, "client.enable", request=request, principal=principal, object_type="client", object_ids=[client_id]
    )
    return _client_out(client)


@router.post(
    "/v1/clients/{client_id}/rotate-secret",
    tags=["clients"],
    summary="A new client secret (shown once); tokens got with the old one stop working everywhere",
)
async def rotate_client_secret(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    client = await _admin_client(session, client_id, scope)
    secret = await identity.rotate_client_secret(session, client)
    await events.record(
        session, "client.rotate_secret", request=request, principal=principal, object_type="client",
        object_ids=[client_id],
    )  # fmt: skip
    return _client_out(client, secret)


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

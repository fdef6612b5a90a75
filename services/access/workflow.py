"""Access requests (ALPR data forms), their versions, supervisors' decisions, grants and disclosures."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import events, exigency
from services.access.models import AccessRequest, Decision, Disclosure, Grant, RequestVersion, utcnow
from services.access.schemas import DecisionIn, DisclosureIn, RequestIn
from services.access.scope import location_history_reason
from shared.auth import AGENCY, AUDITOR, SUPERVISOR, Principal
from shared.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unavailable, Unprocessable
from shared.scoping import Scope
from shared.settings import Settings
from shared.storage import ObjectStore, StorageError

# Court orders: what the upload may be, told by its first bytes (the client's content type is not trusted).
_DOCUMENT_TYPES = {b"%PDF": "application/pdf", b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png"}
_EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None


@dataclass
class RequestFile:
    request: AccessRequest
    versions: list[RequestVersion]
    decisions: list[Decision]
    grants: list[Grant]

    @property
    def current(self) -> RequestVersion:
        return self.versions[-1]


def _document_type(data: bytes) -> str:
    for magic, content_type in _DOCUMENT_TYPES.items():
        if data.startswith(magic):
            return content_type
    raise BadRequest("the court order must be a PDF, JPEG or PNG file")


def _check_basis(principal: Principal, body: RequestIn, upload: Upload | None) -> None:
    if principal.has_role(AGENCY) and body.legal_basis == "investigation":
        raise BadRequest("an outside agency files with legal_basis 'agency_request' or 'court_order'")
    if body.legal_basis == "court_order" and upload is None:
        raise BadRequest("legal_basis 'court_order' needs the order itself: upload it as `court_order`")


async def _new_version(
    session: AsyncSession,
    store: ObjectStore,
    settings: Settings,
    principal: Principal,
    req: AccessRequest,
    version: int,
    body: RequestIn,
    upload: Upload | None,
) -> RequestVersion:
    _check_basis(principal, body, upload)
    body = exigency.check(settings, body)
    too_wide = area_reason(
        settings, body.area.radius_m if body.area else None, body.warrant_number, body.exigency_attestation
    )
    if too_wide:
        raise Unprocessable(too_wide)
    row = RequestVersion(
        request_id=req.id,
        version=version,
        case_number=body.case_number,
        reason=body.reason,
        suspicion_basis=body.suspicion_basis,
        legal_basis=body.legal_basis,
        plates=body.plates,
        misread_tolerant=body.misread_tolerant,
        start=body.start,
        end=body.end,
        area_lat=body.area.lat if body.area else None,
        area_lon=body.area.lon if body.area else None,
        area_radius_m=body.area.radius_m if body.area else None,
        warrant_number=body.warrant_number,
        exigency_attestation=body.exigency_attestation,
        filed_by=principal.subject,
    )
    if upload is not None:
        if len(upload.data) > settings.court_order_max_bytes:
            raise PayloadTooLarge(f"the court order is larger than {settings.court_order_max_bytes} bytes")
        content_type = _document_type(upload.data)
        sha = hashlib.sha256(upload.data).hexdigest()
        key = f"court-orders/{req.id}/v{version}-{sha[:16]}{_EXTENSIONS[content_type]}"
        try:
            await store.put(key, upload.data, content_type)
        except StorageError as exc:
            raise Unavailable("object store unavailable: the request was not filed") from exc
        row.court_order_key, row.court_order_sha256, row.court_order_content_type = key, sha, content_type
    session.add(row)
    await session.flush()
    return row


async def file_request(
    session: AsyncSession,
    store: ObjectStore,
    settings: Settings,
    principal: Principal,
    request: Request,
    body: RequestIn,
    upload: Upload | None,
) -> AccessRequest:
    req = AccessRequest(
        requester=principal.subject, requester_roles=sorted(principal.roles), requester_agency=principal.agency
    )
    session.add(req)
    await session.flush()
    version = await _new_version(session, store, settings, principal, req, 1, body, upload)
    await events.record(
        session, "request.file", request=request, principal=principal, object_type="access_request",
        object_ids=[str(req.id)], case_number=body.case_number,
        details={"version": 1, "legal_basis": body.legal_basis, "plates": body.plates,
                 "court_order_sha256": version.court_order_sha256},
    )  # fmt: skip
    return req


async def amend_request(
    session: AsyncSession,
    store: ObjectStore,
    settings: Settings,
    principal: Principal,
    request: Request,
    request_id: uuid.UUID,
    body: RequestIn,
    upload: Upload | None,
) -> AccessRequest:
    req = await session.get(AccessRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFound("no such request")
    if req.requester != principal.subject:
        raise Forbidden("only the requester amends a request")
    req.current_version += 1
    req.status = "pending"
    req.updated_at = utcnow()
    session.add(req)
    await _new_version(session, store, settings, principal, req, req.current_version, body, upload)
    await events.record(
        session, "request.amend", request=request, principal=principal, object_type="access_request",
        object_ids=[str(req.id)], case_number=body.case_number, details={"version": req.current_version},
    )  # fmt: skip
    return req


async def load(session: AsyncSession, request_id: uuid.UUID) -> RequestFile:
    req = await session.get(AccessRequest, request_id)
    if req is None:
        raise NotFound("no such request")
    versions = list(
        await session.exec(
            select(RequestVersion).where(RequestVersion.request_id == req.id).order_by(col(RequestVersion.version))
        )
    )
    decisions = list(
        await session.exec(select(Decision).where(Decision.request_id == req.id).order_by(col(Decision.decided_at)))
    )
    grants = list(await session.exec(select(Grant).where(Grant.request_id == req.id).order_by(col(Grant.created_at))))
    return RequestFile(req, versions, decisions, grants)


def supervises(principal: Principal, req: AccessRequest) -> bool:
    """Supervisors handle their own agency's requests and those of outside agencies' clients."""
    return principal.has_role(SUPERVISOR) and (
        AGENCY in req.requester_roles or (principal.agency is not None and principal.agency == req.requester_agency)
    )


def may_view(principal: Principal, req: AccessRequest) -> bool:
    # Auditors too see their own agency's requests (and outside agencies' clients'), not another agency's.
    auditor = principal.has_role(AUDITOR) and (
        AGENCY in req.requester_roles or Scope(principal).owns(req.requester_agency)
    )
    return req.requester == principal.subject or supervises(principal, req) or auditor


async def mine(session: AsyncSession, principal: Principal) -> list[tuple[AccessRequest, RequestVersion]]:
    rows = await session.exec(
        select(AccessRequest, RequestVersion)
        .join(
            RequestVersion,
            (col(RequestVersion.request_id) == AccessRequest.id)
            & (col(RequestVersion.version) == AccessRequest.current_version),
        )
        .where(AccessRequest.requester == principal.subject)
        .order_by(col(AccessRequest.filed_at).desc())
    )
    return list(rows.all())


async def queue(session: AsyncSession, principal: Principal) -> list[tuple[AccessRequest, RequestVersion]]:
    """Pending requests this supervisor may decide (never their own), oldest first."""
    rows = await session.exec(
        select(AccessRequest, RequestVersion)
        .join(
            RequestVersion,
            (col(RequestVersion.request_id) == AccessRequest.id)
            & (col(RequestVersion.version) == AccessRequest.current_version),
        )
        .where(AccessRequest.status == "pending", AccessRequest.requester != principal.subject)
        .order_by(col(AccessRequest.updated_at))
    )
    return [(req, ver) for req, ver in rows.all() if supervises(principal, req)]


async def decide(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    request: Request,
    request_id: uuid.UUID,
    body: DecisionIn,
) -> tuple[Decision, Grant | None]:
    req = await session.get(AccessRequest, request_id, with_for_update=True)
    if req is None:
        raise NotFound("no such request")
    ids = {"object_type": "access_request", "object_ids": [str(req.id)]}

    async def refused(error: Forbidden | Conflict | BadRequest) -> Exception:
        return await events.refuse(
            session, error, "request.decide", request=request, principal=principal, **ids,
            details={"decision": body.decision, "version": body.version},
        )  # fmt: skip

    if req.requester == principal.subject:
        raise await refused(Forbidden("nobody decides their own request: another supervisor must"))
    if not supervises(principal, req):
        raise await refused(Forbidden("this request belongs to another agency's supervisors"))
    if req.status != "pending":
        raise await refused(Conflict(f"the request is already {req.status}"))
    if body.version != req.current_version:
        raise await refused(Conflict(f"the request was amended: decide on version {req.current_version}"))
    version = (
        await session.exec(
            select(RequestVersion).where(RequestVersion.request_id == req.id, RequestVersion.version == body.version)
        )
    ).one()
    now = utcnow()
    grant = None
    expires_at: datetime | None = None
    if body.decision == "approve":
        history = location_history_reason(
            version.plates, version.start, version.end, version.area_lat is not None,
            warrant=version.warrant_number, exigency=version.exigency_attestation,
        )  # fmt: skip
        if history:
            raise await refused(Forbidden(history))
        too_wide = area_reason(settings, version.area_radius_m, version.warrant_number, version.exigency_attestation)
        if too_wide:
            raise await refused(Forbidden(too_wide))
        expires_at = body.expires_at or now + timedelta(days=settings.grant_default_days)
        if expires_at <= now:
            raise await refused(BadRequest("the grant's expiry must be in the future"))
        if expires_at > now + timedelta(days=settings.grant_max_days):
            raise await refused(BadRequest(f"a grant lasts at most {settings.grant_max_days} days"))
    decision = Decision(
        request_id=req.id, version=version.version, decision=body.decision, reason=body.reason,
        decided_by=principal.subject,
    )  # fmt: skip
    session.add(decision)
    await session.flush()
    if expires_at is not None:
        grant = Grant(
            request_id=req.id, version=version.version, decision_id=decision.id, holder=req.requester,
            holder_agency=req.requester_agency, data_agency=principal.agency, case_number=version.case_number,
            plates=version.plates,
            misread_tolerant=version.misread_tolerant, start=version.start, end=version.end,
            area_lat=version.area_lat, area_lon=version.area_lon, area_radius_m=version.area_radius_m,
            warrant_number=version.warrant_number, exigency_attestation=version.exigency_attestation,
            expires_at=expires_at,
        )  # fmt: skip
        session.add(grant)
    req.status = "approved" if grant else "denied"
    req.updated_at = now
    session.add(req)
    await session.flush()
    await events.record(
        session, "request.decide", request=request, principal=principal, case_number=version.case_number,
        grant_id=str(grant.id) if grant else None, **ids,
        details={"decision": body.decision, "version": version.version, "reason": body.reason,
                 "expires_at": expires_at.isoformat() if expires_at else None},
    )  # fmt: skip
    return decision, grant


async def legal_basis(session: AsyncSession, grant: Grant) -> str:
    """The legal basis the grant's approved version was filed under."""
    result = await session.exec(
        select(RequestVersion.legal_basis).where(
            RequestVersion.request_id == grant.request_id, RequestVersion.version == grant.version
        )
    )
    return result.one()


def grant_active(grant: Grant, now: datetime | None = None) -> bool:
    return grant.revoked_at is None and grant.expires_at > (now or utcnow())


async def my_grants(session: AsyncSession, principal: Principal) -> list[Grant]:
    rows = await session.exec(
        select(Grant).where(Grant.holder == principal.subject).order_by(col(Grant.created_at).desc())
    )
    return list(rows)


async def revoke_grant(
    session: AsyncSession, principal: Principal, request: Request, grant_id: uuid.UUID, reason: str
) -> Grant:
    grant = await session.get(Grant, grant_id, with_for_update=True)
    if grant is None:
        raise NotFound("no such grant")
    req = await session.get(AccessRequest, grant.request_id)
    assert req is not None
    if not supervises(principal, req):
        raise Forbidden("this grant belongs to another agency's supervisors")
    if grant.revoked_at is None:
        grant.revoked_at, grant.revoked_by, grant.revoke_reason = utcnow(), principal.subject, reason
        session.add(grant)
        await session.flush()
    await events.record(
        session, "grant.revoke", request=request, principal=principal, object_type="grant",
        object_ids=[str(grant.id)], grant_id=str(grant.id), case_number=grant.case_number, details={"reason": reason},
    )  # fmt: skip
    return grant


async def record_disclosure(
    session: AsyncSession,
    principal: Principal,
    request: Request | None,
    grant: Grant,
    *,
    recipient_name: str,
    recipient_ori: str | None,
    legal_basis: str,
    purpose: str,
    read_ids: list[str],
) -> Disclosure:
    row = Disclosure(
        grant_id=grant.id, case_number=grant.case_number, recipient_name=recipient_name, recipient_ori=recipient_ori,
        legal_basis=legal_basis, purpose=purpose, read_ids=read_ids, record_count=len(read_ids),
        disclosed_by=principal.subject, agency=grant.data_agency or "",
    )  # fmt: skip
    session.add(row)
    await session.flush()
    await events.record(
        session, "disclosure", request=request, principal=principal, object_type="read", object_ids=read_ids,
        grant_id=str(grant.id), case_number=grant.case_number, record_count=len(read_ids),
        details={"disclosure_id": str(row.id), "recipient": recipient_name, "recipient_ori": recipient_ori,
                 "legal_basis": legal_basis, "purpose": purpose},
    )  # fmt: skip
    return row


async def disclose(session: AsyncSession, principal: Principal, request: Request, body: DisclosureIn) -> Disclosure:
    grant = await session.get(Grant, body.grant_id)
    if grant is None or not Scope(principal).owns(grant.data_agency):
        raise NotFound("no such grant in your agency")
    req = await session.get(AccessRequest, grant.request_id)
    assert req is not None
    if grant.holder != principal.subject and not supervises(principal, req):
        raise Forbidden("only the grant's holder or a supervisor records its disclosures")
    return await record_disclosure(
        session, principal, request, grant, recipient_name=body.recipient_name, recipient_ori=body.recipient_ori,
        legal_basis=body.legal_basis, purpose=body.purpose, read_ids=body.read_ids,
    )  # fmt: skip


async def disclosures(session: AsyncSession, scope: Scope, limit: int = 200) -> list[Disclosure]:
    """The caller's agency's disclosures (of its data), newest first."""
    stmt = scope.where(select(Disclosure), col(Disclosure.agency))
    rows = await session.exec(stmt.order_by(col(Disclosure.disclosed_at).desc()).limit(limit))
    return list(rows)


def area_reason(settings: Settings, radius_m: float | None, warrant: str | None, exigency: str | None) -> str | None:
    """A plate plus a wide circle is a location history: without a warrant or exigency the area stays small."""
    limit = settings.access_area_max_m_without_warrant
    if radius_m is not None and radius_m > limit and not (warrant or exigency):
        return (
            f"an area wider than {limit:.0f} m in radius needs a warrant number or an exigency attestation "
            "(a plate plus a wide area is a location history, Minn. Stat. 13.824 subd. 2(d))"
        )
    return None

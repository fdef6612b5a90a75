"""The records behind holds: a data subject's exculpatory-preservation request (Minn. Stat. 13.824 subd. 3(b)) with
its document in the object store, and the reviews of holds (subd. 3(d): inactive investigative data follow the
138.17 records schedule, `ALPR_HOLD_REVIEW_DAYS`): each active hold has a review date, and supervisors get the list
of holds due. A hold ends by release with a reason (POST /v1/holds/{id}/release)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import text

from services.ingest.deps import Ctx
from services.ingest.holds import HOLDS
from services.ingest.retention_models import HoldReview, SubjectRequest
from services.ingest.service import delete_quietly
from shared.acting_for import acting_for_grant
from shared.audit import client_ip, record
from shared.auth import AUDITOR, SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import Conflict, NotFound, Unavailable, Unprocessable
from shared.scoping import Scoped
from shared.text import CleanInput

router = APIRouter(tags=["retention"])
Supervisor = Annotated[Principal, Depends(require_roles(SUPERVISOR))]
HoldReader = Annotated[Principal, Depends(require_roles(SUPERVISOR, AUDITOR))]
DOCUMENT_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


class SubjectRequestIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    requester: str = Field(min_length=1, max_length=300, description="the data subject (or counsel) who asked")
    charge: str = Field(min_length=1, max_length=2000, description="the charge the data may clear")
    received_on: AwareDatetime
    review_on: AwareDatetime | None = Field(default=None, description="default: received + ALPR_HOLD_REVIEW_DAYS")


class SubjectRequestOut(BaseModel):
    request_id: uuid.UUID
    hold_id: uuid.UUID
    requester: str
    case_number: str
    charge: str
    received_on: datetime
    review_on: datetime
    document_key: str
    document_sha256: str
    recorded_by: str
    recorded_at: datetime


def _request_out(r: SubjectRequest) -> SubjectRequestOut:
    return SubjectRequestOut(
        request_id=r.id,
        hold_id=r.hold_id,
        requester=r.requester,
        case_number=r.case_number,
        charge=r.charge,
        received_on=r.received_on,
        review_on=r.review_on,
        document_key=r.document_key,
        document_sha256=r.document_sha256,
        recorded_by=r.recorded_by,
        recorded_at=r.recorded_at,
    )


@router.post(
    "/v1/holds/{hold_id}/subject-request",
    status_code=201,
    summary="Record the written request behind an exculpatory hold: who asked, the document, the charge, review",
)
async def record_subject_request(
    hold_id: uuid.UUID,
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    ctx: Ctx,
    metadata: Annotated[str, Form(description="SubjectRequestIn as JSON")],
    document: Annotated[UploadFile, File(description="the request as received (PDF or image)")],
    scope: Scoped,
) -> SubjectRequestOut:
    try:
        body = SubjectRequestIn.model_validate(json.loads(metadata))
    except (ValueError, ValidationError) as exc:
        raise Unprocessable(f"metadata: {exc}") from None
    hold = await HOLDS.active(session, scope, hold_id, "the hold is released")
    if hold.kind != "exculpatory":
        raise Conflict("only an exculpatory hold carries a subject's request (place one with kind=exculpatory)")
    content_type = (document.content_type or "").split(";")[0].strip()
    if content_type not in DOCUMENT_TYPES:
        raise Unprocessable(f"document: {content_type or 'no type'} is not one of {sorted(DOCUMENT_TYPES)}")
    data = await document.read(ctx.settings.court_order_max_bytes + 1)
    if not data or len(data) > ctx.settings.court_order_max_bytes:
        raise Unprocessable(f"document: empty, or larger than {ctx.settings.court_order_max_bytes} bytes")
    rid = uuid.uuid4()
    key = f"subject-requests/{rid}.{DOCUMENT_TYPES[content_type]}"
    try:
        await ctx.store.put(key, data, content_type)
    except Exception as exc:  # noqa: BLE001 - any store failure: nothing recorded, the client retries
        raise Unavailable("object store unavailable, retry later") from exc
    review_on = body.review_on or body.received_on + timedelta(days=ctx.settings.hold_review_days)
    sr = SubjectRequest(
        id=rid,
        hold_id=hold.id,
        requester=body.requester,
        case_number=hold.case_number,
        charge=body.charge,
        received_on=body.received_on,
        review_on=review_on,
        document_key=key,
        document_sha256=hashlib.sha256(data).hexdigest(),
        recorded_by=principal.subject,
        recorded_at=datetime.now(UTC),
    )
    session.add(sr)
    try:
        await session.flush()
    except BaseException:
        await delete_quietly(ctx.store, [key])  # no document left without its record
        raise
    await record(
        session,
        service="ingest",
        action="subject_request.exculpatory",
        principal=principal,
        object_type="hold",
        object_ids=[str(hold.id)],
        case_number=hold.case_number,
        source_ip=client_ip(request),
        details={"request_id": str(rid), "requester": body.requester, "charge": body.charge},
    )
    return _request_out(sr)


class ReviewIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=3, max_length=4000, description="why the hold is still needed")
    next_review_on: AwareDatetime | None = Field(default=None, description="default: now + ALPR_HOLD_REVIEW_DAYS")


class ReviewDue(BaseModel):
    hold_id: uuid.UUID
    kind: str
    case_number: str
    placed_at: datetime
    review_on: datetime
    overdue: bool
    last_reviewed_at: datetime | None
    charge: str | None  # an exculpatory hold: the charge it concerns


class ReviewList(BaseModel):
    review_days: int
    holds: list[ReviewDue]


# The review date of each active hold: its last review's next date, else its subject request's, else the schedule.
_DUE = """
SELECT h.id, h.kind, h.case_number, h.placed_at,
       coalesce(rv.next_review_on, sr.review_on, h.placed_at + make_interval(days => :days)) AS review_on,
       rv.reviewed_at, sr.charge, h.agency
FROM ingest.holds h
LEFT JOIN LATERAL (SELECT next_review_on, reviewed_at FROM ingest.hold_reviews r WHERE r.hold_id = h.id
                   ORDER BY reviewed_at DESC LIMIT 1) rv ON true
LEFT JOIN LATERAL (SELECT review_on, charge FROM ingest.subject_requests s WHERE s.hold_id = h.id
                   ORDER BY recorded_at DESC LIMIT 1) sr ON true
WHERE h.released_at IS NULL
"""


@router.get("/v1/holds/reviews", summary="Supervisors' reminder list: active holds whose review is due")
async def reviews_due(
    principal: HoldReader,
    session: SessionDep,
    ctx: Ctx,
    scope: Scoped,
    within_days: int = Query(default=30, ge=0, le=3650, description="due within this many days (0: due now)"),
) -> ReviewList:
    now = datetime.now(UTC)
    rows = (
        await session.execute(
            text(f"SELECT * FROM ({_DUE}) d WHERE agency = :agency AND review_on <= :by ORDER BY review_on"),
            {"days": ctx.settings.hold_review_days, "by": now + timedelta(days=within_days), "agency": scope.agency},
        )
    ).all()
    return ReviewList(
        review_days=ctx.settings.hold_review_days,
        holds=[
            ReviewDue(
                hold_id=r[0],
                kind=r[1],
                case_number=r[2],
                placed_at=r[3],
                review_on=r[4],
                overdue=r[4] <= now,
                last_reviewed_at=r[5],
                charge=r[6],
            )
            for r in rows
        ],
    )


@router.post("/v1/holds/{hold_id}/reviews", status_code=201, summary="Review a hold: keep it, until the next date")
async def review_hold(
    hold_id: uuid.UUID,
    body: ReviewIn,
    request: Request,
    principal: Supervisor,
    session: SessionDep,
    ctx: Ctx,
    scope: Scoped,
) -> ReviewDue:
    hold = await HOLDS.active(session, scope, hold_id, "the hold is released")
    now = datetime.now(UTC)
    next_on = body.next_review_on or now + timedelta(days=ctx.settings.hold_review_days)
    if next_on <= now or next_on > now + timedelta(days=ctx.settings.hold_review_days):
        raise Unprocessable(f"next_review_on must be after now and within {ctx.settings.hold_review_days} days")
    session.add(HoldReview(hold_id=hold.id, reviewed_by=principal.subject, reviewed_at=now, note=body.note,
                           next_review_on=next_on))  # fmt: skip
    await session.flush()
    await record(
        session,
        service="ingest",
        action="hold.review",
        principal=principal,
        object_type="hold",
        object_ids=[str(hold.id)],
        case_number=hold.case_number,
        source_ip=client_ip(request),
        details={"note": body.note, "next_review_on": next_on.isoformat()},
    )
    row = (
        await session.execute(
            text(f"SELECT * FROM ({_DUE}) d WHERE id = :id"), {"days": ctx.settings.hold_review_days, "id": hold.id}
        )
    ).one()
    return ReviewDue(
        hold_id=row[0], kind=row[1], case_number=row[2], placed_at=row[3], review_on=row[4], overdue=row[4] <= now,
        last_reviewed_at=row[5], charge=row[6],
    )  # fmt: skip


# ---- evidence: a held read's record for access's export (role `service`) -----------------------------------

Service = Annotated[Principal, Depends(require_roles("service"))]


class EvidenceIn(CleanInput):
    read_id: uuid.UUID
    agency: str = Field(max_length=80, description="the grant's agency: only its reads and holds are exported")


class EvidenceOut(BaseModel):
    read: dict[str, object]  # the stored read: plate, time, location, its source, its keys
    holds: list[dict[str, object]]  # the active holds that keep it


@router.post("/v1/internal/reads/evidence", tags=["internal"], summary="A held read's record (access's evidence)")
async def read_evidence(body: EvidenceIn, request: Request, principal: Service, session: SessionDep) -> EvidenceOut:
    # The token serves this read under a grant of the body's agency (shared/acting_for.py), or 403.
    await acting_for_grant(request, principal)
    # The read first: another agency's read answers 404, as a read that does not exist (the one-door rule).
    row = (
        (
            await session.execute(
                text(
                    "SELECT id, captured_at, received_at, agency, unit, camera, lat, lon, plate, plate_confidence, "
                    "state, plate_source, car_plate, image_key, crop_key, classification FROM ingest.reads "
                    "WHERE id = :r AND agency = :agency"
                ),
                {"r": body.read_id, "agency": body.agency},
            )
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound("no such read")
    holds = (
        await session.execute(
            text(
                "SELECT h.id, h.kind, h.case_number, h.classification, h.placed_at, h.placed_by FROM ingest.holds h "
                "JOIN ingest.hold_reads hr ON hr.hold_id = h.id WHERE hr.read_id = :r AND h.released_at IS NULL "
                "AND h.agency = :agency ORDER BY h.placed_at"
            ),
            {"r": body.read_id, "agency": body.agency},
        )
    ).all()
    if not holds:
        raise Conflict("the read is not held: only a read kept for a case is exported as evidence")
    read = {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in row.items()}  # fmt: skip
    return EvidenceOut(
        read=read,
        holds=[
            {
                "hold_id": str(h[0]),
                "kind": h[1],
                "case_number": h[2],
                "classification": h[3],
                "placed_at": h[4].isoformat(),
                "placed_by": h[5],
            }
            for h in holds
        ],  # fmt: skip
    )

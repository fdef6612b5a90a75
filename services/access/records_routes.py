"""Records the statute and a records request ask for: the audit trail as CSV (filtered by period, actor, case) and
the breach-notification record (Minn. Stat. 13.055: what happened, when it was discovered, who was told and when)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import col, func, select

from services.access import events
from services.access.deps import Auditor, allow
from services.access.notice_models import BreachNotice
from shared.audit import AuditEntry
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import Unprocessable
from shared.scoping import Scoped
from shared.text import CleanInput, csv_cell

router = APIRouter(tags=["records"])
BreachWriter = Annotated[Principal, Depends(allow("supervisor", "admin"))]
BreachReader = Annotated[Principal, Depends(allow("supervisor", "auditor", "admin"))]
MAX_EXPORT = 1_000_000  # rows; a larger trail is asked for in parts

_COLUMNS = (
    "seq",
    "at",
    "service",
    "actor",
    "actor_roles",
    "agency",
    "action",
    "object_type",
    "object_ids",
    "case_number",
    "grant_id",
    "source_ip",
    "outcome",
    "record_count",
    "details",
    "request_id",
    "hash",
)


@router.get(
    "/v1/audit/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    summary="The audit trail as CSV for a records request: by period, actor, case number",
)
async def export_audit(
    request: Request,
    session: SessionDep,
    principal: Auditor,
    scope: Scoped,
    since: Annotated[datetime, Query(description="period start, ISO 8601 with zone")],
    until: Annotated[datetime, Query(description="period end (excluded), ISO 8601 with zone")],
    actor: str | None = None,
    case_number: str | None = None,
) -> Response:
    if since.tzinfo is None or until.tzinfo is None or until <= since:
        raise Unprocessable("since and until need a zone, and until must follow since")
    # The caller's agency's entries only (the entry's agency: the actor's; none for an unattributed one, which a
    # token without an agency sees, as records without one).
    stmt = scope.where(select(AuditEntry), func.coalesce(col(AuditEntry.agency), ""))
    stmt = stmt.where(col(AuditEntry.at) >= since, col(AuditEntry.at) < until)
    if actor is not None:
        stmt = stmt.where(col(AuditEntry.actor) == actor)
    if case_number is not None:
        stmt = stmt.where(col(AuditEntry.case_number) == case_number)
    rows = list(await session.exec(stmt.order_by(col(AuditEntry.seq)).limit(MAX_EXPORT + 1)))
    if len(rows) > MAX_EXPORT:
        raise Unprocessable(f"more than {MAX_EXPORT} entries: ask for a shorter period")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_COLUMNS)
    for e in rows:
        values: list[Any] = []
        for c in _COLUMNS:
            v = getattr(e, c)
            if isinstance(v, datetime):
                v = v.isoformat()
            elif isinstance(v, list):
                v = " ".join(str(x) for x in v)
            elif isinstance(v, dict):
                v = json.dumps(v, sort_keys=True, default=str)
            values.append("" if v is None else csv_cell(v))  # a case number or reason is anyone's text
        w.writerow(values)
    filters = {"since": since.isoformat(), "until": until.isoformat(), "actor": actor, "case_number": case_number}
    await events.record(
        session,
        "audit.export",
        request=request,
        principal=principal,
        record_count=len(rows),
        details={k: v for k, v in filters.items() if v is not None},
    )
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit-trail.csv"'},
    )


# ---- breach notification (13.055) ---------------------------------------------------------------------------


class Notified(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: str = Field(min_length=1, max_length=300, description="a data subject, the BCA, the LCDP, a processor...")
    how: str = Field(min_length=1, max_length=100, description="letter, e-mail, phone")
    at: AwareDatetime


class BreachIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    what: str = Field(min_length=1, max_length=4000, description="what data, how accessed or acquired, by whom")
    occurred_at: AwareDatetime | None = None
    discovered_at: AwareDatetime
    records_affected: int | None = Field(default=None, ge=0)
    unauthorized_by_employee: bool = False
    notified: list[Notified] = Field(default_factory=list, max_length=10_000)
    investigation_report: str | None = Field(default=None, max_length=20_000, description="the report at conclusion")


class BreachNotifyIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    notified: list[Notified] = Field(min_length=1, max_length=10_000)


class BreachOut(BaseModel):
    breach_id: uuid.UUID
    what: str
    occurred_at: datetime | None
    discovered_at: datetime
    records_affected: int | None
    unauthorized_by_employee: bool
    notified: list[dict[str, Any]]
    investigation_report: str | None
    recorded_by: str
    recorded_at: datetime
    status: Literal["notification_pending", "notified"]


def _out(b: BreachNotice) -> BreachOut:
    return BreachOut(
        breach_id=b.id,
        what=b.what,
        occurred_at=b.occurred_at,
        discovered_at=b.discovered_at,
        records_affected=b.records_affected,
        unauthorized_by_employee=b.unauthorized_by_employee,
        notified=list(b.notified),
        investigation_report=b.investigation_report,
        recorded_by=b.recorded_by,
        recorded_at=b.recorded_at,
        status="notified" if b.notified else "notification_pending",
    )


def _notified(items: list[Notified], discovered: datetime) -> list[dict[str, Any]]:
    for n in items:
        if n.at < discovered:
            raise Unprocessable(f"{n.who} was told before the breach was discovered: check `at`")
        if n.at > datetime.now(UTC):
            raise Unprocessable("record a notification once it has been made (`at` is in the future)")
    return [{"who": n.who, "how": n.how, "at": n.at.isoformat()} for n in items]


@router.post("/v1/breaches", status_code=201, summary="Record a breach of the ALPR data's security (13.055)")
async def record_breach(
    body: BreachIn, request: Request, principal: BreachWriter, scope: Scoped, session: SessionDep
) -> BreachOut:
    if body.occurred_at and body.occurred_at > body.discovered_at:
        raise Unprocessable("occurred_at follows discovered_at")
    b = BreachNotice(
        id=uuid.uuid4(),
        agency=scope.agency,
        what=body.what,
        occurred_at=body.occurred_at,
        discovered_at=body.discovered_at,
        records_affected=body.records_affected,
        unauthorized_by_employee=body.unauthorized_by_employee,
        notified=_notified(body.notified, body.discovered_at),
        investigation_report=body.investigation_report,
        recorded_by=principal.subject,
        recorded_at=datetime.now(UTC),
    )
    session.add(b)
    await session.flush()
    await events.record(
        session, "breach.record", request=request, principal=principal, object_type="breach", object_ids=[str(b.id)],
        record_count=body.records_affected, details={"notified": len(b.notified)},
    )  # fmt: skip
    return _out(b)


@router.post("/v1/breaches/{breach_id}/notifications", summary="Add who was told, how and when")
async def add_notifications(
    breach_id: uuid.UUID,
    body: BreachNotifyIn,
    request: Request,
    principal: BreachWriter,
    scope: Scoped,
    session: SessionDep,
) -> BreachOut:
    b = scope.check(await session.get(BreachNotice, breach_id, with_for_update=True), f"breach {breach_id}")
    b.notified = [*b.notified, *_notified(body.notified, b.discovered_at)]
    session.add(b)
    await session.flush()
    await events.record(
        session, "breach.notified", request=request, principal=principal, object_type="breach",
        object_ids=[str(b.id)], details={"added": [n.who for n in body.notified]},
    )  # fmt: skip
    return _out(b)


class BreachList(BaseModel):
    breaches: list[BreachOut]


@router.get("/v1/breaches", summary="The breach records, newest first")
async def list_breaches(principal: BreachReader, scope: Scoped, session: SessionDep) -> BreachList:
    stmt = scope.where(select(BreachNotice), col(BreachNotice.agency))
    rows = await session.exec(stmt.order_by(col(BreachNotice.discovered_at).desc()).limit(1000))
    return BreachList(breaches=[_out(b) for b in rows])

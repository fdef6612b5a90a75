"""Breach records (Minn. Stat. 13.055): what happened, when it was discovered, who was told and when, and the duties
the statute sets, each with its due date and `overdue` (services/access/breach_duties.py): the notice to the affected
individuals, to the consumer reporting agencies over 1,000 of them, paused while a law-enforcement delay is in
force; the report once the investigation ends; the annual security assessment. One agency's records (the caller's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import events
from services.access.breach_duties import ASSESSMENT_EVERY, Duty, assessment_status, duties
from services.access.deps import SettingsDep, allow
from services.access.notice_models import BreachNotice, SecurityAssessment
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import Conflict, Unprocessable
from shared.scoping import Scope, Scoped
from shared.settings import Settings
from shared.text import CleanInput

router = APIRouter(tags=["records"])
BreachWriter = Annotated[Principal, Depends(allow("supervisor", "admin"))]
BreachReader = Annotated[Principal, Depends(allow("supervisor", "auditor", "admin"))]


class Notified(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: str = Field(min_length=1, max_length=300, description="a data subject, the BCA, the LCDP, a processor...")
    how: str = Field(min_length=1, max_length=100, description="letter, e-mail, phone")
    at: AwareDatetime
    to: Literal["individuals", "consumer_reporting_agencies", "other"] = Field(
        default="other",
        description="`individuals`: the written notice to every affected individual (subd. 2(a)); "
        "`consumer_reporting_agencies`: all nationwide ones (subd. 5); `other`: anyone else told",
    )
    says_report_and_how_to_request: bool = Field(
        default=False,
        description="for `individuals`: the notice says a report will be prepared on the investigation and how to "
        "request a copy (subd. 2(a)); required true there",
    )


class BreachIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    what: str = Field(min_length=1, max_length=4000, description="what data, how accessed or acquired, by whom")
    occurred_at: AwareDatetime | None = None
    discovered_at: AwareDatetime
    records_affected: int | None = Field(default=None, ge=0)
    individuals_affected: int | None = Field(default=None, ge=0, description="over 1,000: the CRAs are told too")
    unauthorized_by_employee: bool = False
    notified: list[Notified] = Field(default_factory=list, max_length=10_000)
    investigation_report: str | None = Field(default=None, max_length=20_000, description="the report at conclusion")


class BreachNotifyIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    notified: list[Notified] = Field(min_length=1, max_length=10_000)


class DelayIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=2, max_length=300, description="the law-enforcement agency that asked for the delay")
    reason: str = Field(min_length=10, max_length=4000, description="its determination: notice would impede an "
                        "active criminal investigation")  # fmt: skip
    since: AwareDatetime


class DelayEndIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="when the agency said notice would no longer impede the investigation")


class InvestigationIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    completed_at: AwareDatetime | None = Field(
        default=None, description="the investigation and the final disposition of any disciplinary action ended"
    )
    report: str | None = Field(default=None, min_length=1, max_length=20_000)
    individuals_affected: int | None = Field(default=None, ge=0)
    # With the report of an employee's unauthorized access (subd. 2(b)): all three, and the number of individuals.
    data_types: list[str] = Field(default_factory=list, max_length=50, description="the type of data accessed")
    responsible_employees: list[str] = Field(
        default_factory=list, max_length=200, description="the name of each employee responsible"
    )
    final_disposition: str | None = Field(default=None, min_length=1, max_length=4000)


class BreachOut(BaseModel):
    breach_id: uuid.UUID
    what: str
    occurred_at: datetime | None
    discovered_at: datetime
    records_affected: int | None
    individuals_affected: int | None
    unauthorized_by_employee: bool
    notified: list[dict[str, Any]]
    law_enforcement_delays: list[dict[str, Any]]
    investigation_completed_at: datetime | None
    investigation_report: str | None
    report_details: dict[str, Any] | None
    recorded_by: str
    recorded_at: datetime
    status: Literal["notification_pending", "notified"]
    duties: list[Duty]
    overdue: bool  # any duty past its due date


def _out(b: BreachNotice, settings: Settings) -> BreachOut:
    owed = duties(b, settings)
    return BreachOut(
        breach_id=b.id,
        what=b.what,
        occurred_at=b.occurred_at,
        discovered_at=b.discovered_at,
        records_affected=b.records_affected,
        individuals_affected=b.individuals_affected,
        unauthorized_by_employee=b.unauthorized_by_employee,
        notified=list(b.notified),
        law_enforcement_delays=list(b.law_enforcement_delays),
        investigation_completed_at=b.investigation_completed_at,
        investigation_report=b.investigation_report,
        report_details=b.report_details,
        recorded_by=b.recorded_by,
        recorded_at=b.recorded_at,
        status="notified" if b.notified else "notification_pending",
        duties=owed,
        overdue=any(d.overdue for d in owed),
    )


def _not_future(at: datetime, what: str) -> None:
    if at > datetime.now(UTC):
        raise Unprocessable(f"record {what} once it has happened (the time given is in the future)")


_NOT_WRITTEN = {"phone", "telephone", "call", "in person", "verbal", "oral"}


def _notified(items: list[Notified], discovered: datetime) -> list[dict[str, Any]]:
    for n in items:
        if n.to == "individuals" and n.how.strip().lower() in _NOT_WRITTEN:
            raise Unprocessable(f"the notice to {n.who} must be written (13.055 subd. 2(a), subd. 4): not by {n.how}")
        if n.to == "individuals" and not n.says_report_and_how_to_request:
            raise Unprocessable(
                f"the notice to {n.who} must say that a report will be prepared and how to request it "
                "(13.055 subd. 2(a)): set says_report_and_how_to_request once it does"
            )
        if n.at < discovered:
            raise Unprocessable(f"{n.who} was told before the breach was discovered: check `at`")
        _not_future(n.at, "a notification")
    return [{"who": n.who, "how": n.how, "at": n.at.isoformat(), "to": n.to} for n in items]


@dataclass
class BreachWrite:
    """What every breach write has: its caller (a supervisor, whose training must be current, or an admin), the
    caller's agency (`Scoped`), the request's session and the settings. Each write goes through `saved`, so the record
    and its audit entry commit in the same transaction."""

    request: Request
    principal: Principal
    scope: Scope
    session: AsyncSession
    settings: Settings

    async def breach(self, breach_id: uuid.UUID) -> BreachNotice:
        """The caller's agency's breach, locked for the update; another agency's is a 404."""
        found = await self.session.get(BreachNotice, breach_id, with_for_update=True)
        return self.scope.check(found, f"breach {breach_id}")

    async def saved(self, b: BreachNotice, action: str, **audit: Any) -> BreachOut:
        """The breach record written and its audit entry with it; the record as answered."""
        self.session.add(b)
        await self.session.flush()
        await events.record(
            self.session, action, request=self.request, principal=self.principal, object_type="breach",
            object_ids=[str(b.id)], **audit,
        )  # fmt: skip
        return _out(b, self.settings)


async def _breach_write(
    request: Request, principal: BreachWriter, scope: Scoped, session: SessionDep, settings: SettingsDep
) -> BreachWrite:
    return BreachWrite(request, principal, scope, session, settings)


Writing = Annotated[BreachWrite, Depends(_breach_write)]


@router.post("/v1/breaches", status_code=201, summary="Record a breach of the ALPR data's security (13.055)")
async def record_breach(body: BreachIn, w: Writing) -> BreachOut:
    if body.occurred_at and body.occurred_at > body.discovered_at:
        raise Unprocessable("occurred_at follows discovered_at")
    _not_future(body.discovered_at, "a breach's discovery")
    if body.unauthorized_by_employee and body.investigation_report:
        raise Unprocessable(
            "the report of an employee's unauthorized access comes once the investigation ends, with what it must "
            "name: POST /v1/breaches/{id}/investigation"
        )
    now = datetime.now(UTC)
    b = BreachNotice(
        id=uuid.uuid4(),
        agency=w.scope.agency,
        what=body.what,
        occurred_at=body.occurred_at,
        discovered_at=body.discovered_at,
        records_affected=body.records_affected,
        individuals_affected=body.individuals_affected,
        unauthorized_by_employee=body.unauthorized_by_employee,
        notified=_notified(body.notified, body.discovered_at),
        investigation_report=body.investigation_report,
        report_recorded_at=now if body.investigation_report else None,
        recorded_by=w.principal.subject,
        recorded_at=now,
    )
    return await w.saved(
        b,
        "breach.record",
        record_count=body.records_affected,
        details={"notified": len(b.notified)},
    )


@router.post("/v1/breaches/{breach_id}/notifications", summary="Add who was told, how and when")
async def add_notifications(breach_id: uuid.UUID, body: BreachNotifyIn, w: Writing) -> BreachOut:
    b = await w.breach(breach_id)
    b.notified = [*b.notified, *_notified(body.notified, b.discovered_at)]
    return await w.saved(
        b, "breach.notified", details={"added": [n.who for n in body.notified], "to": [n.to for n in body.notified]}
    )


@router.post(
    "/v1/breaches/{breach_id}/law-enforcement-delay",
    summary="A law-enforcement agency's determination that notice would impede an active criminal investigation "
    "(13.055 subd. 3): the notices' clock pauses until it is lifted",
)
async def start_delay(breach_id: uuid.UUID, body: DelayIn, w: Writing) -> BreachOut:
    b = await w.breach(breach_id)
    if any(d.get("until") is None for d in b.law_enforcement_delays):
        raise Conflict("a law-enforcement delay is already in force: record its end first")
    if body.since < b.discovered_at:
        raise Unprocessable("the delay starts before the breach was discovered: check `since`")
    _not_future(body.since, "a delay")
    delay = {"by": body.by, "reason": body.reason, "since": body.since.isoformat(), "until": None,
             "recorded_by": w.principal.subject}  # fmt: skip
    b.law_enforcement_delays = [*b.law_enforcement_delays, delay]
    return await w.saved(b, "breach.delay", details={"by": body.by, "since": body.since.isoformat()})


@router.post(
    "/v1/breaches/{breach_id}/law-enforcement-delay/end",
    summary="The law-enforcement agency says notice no longer impedes its investigation: the clock runs again",
)
async def end_delay(breach_id: uuid.UUID, body: DelayEndIn, w: Writing) -> BreachOut:
    b = await w.breach(breach_id)
    delays = [dict(d) for d in b.law_enforcement_delays]
    open_ = [d for d in delays if d.get("until") is None]
    if not open_:
        raise Conflict("no law-enforcement delay is in force")
    if body.at < datetime.fromisoformat(open_[0]["since"]):
        raise Unprocessable("the delay ends before it started: check `at`")
    _not_future(body.at, "a delay's end")
    open_[0]["until"] = body.at.isoformat()
    b.law_enforcement_delays = delays
    return await w.saved(b, "breach.delay_end", details={"at": body.at.isoformat()})


@router.post(
    "/v1/breaches/{breach_id}/investigation",
    summary="The investigation's end (and final disposition of any disciplinary action), its report, the number "
    "of individuals it found",
)
async def record_investigation(breach_id: uuid.UUID, body: InvestigationIn, w: Writing) -> BreachOut:
    if body.completed_at is None and body.report is None and body.individuals_affected is None:
        raise Unprocessable("give completed_at, report or individuals_affected")
    b = await w.breach(breach_id)
    if body.completed_at is not None:
        if body.completed_at < b.discovered_at:
            raise Unprocessable("the investigation ends before the breach was discovered: check `completed_at`")
        _not_future(body.completed_at, "the investigation's end")
        b.investigation_completed_at = body.completed_at
    if body.individuals_affected is not None:
        b.individuals_affected = body.individuals_affected
    if body.report is not None:
        if b.unauthorized_by_employee:
            b.report_details = _employee_report(b, body)
        b.investigation_report = body.report
        b.report_recorded_at = datetime.now(UTC)
    return await w.saved(
        b,
        "breach.investigation",
        details={
            "completed_at": body.completed_at.isoformat() if body.completed_at else None,
            "report": body.report is not None,
            "individuals_affected": body.individuals_affected,
        },
    )


def _employee_report(b: BreachNotice, body: InvestigationIn) -> dict[str, Any]:
    """What the report of an employee's unauthorized access must hold (13.055 subd. 2(b)), or 422 naming what is
    missing: it is made once the investigation and the final disposition of any disciplinary action are known."""
    missing = [
        name
        for name, absent in (
            ("completed_at (the investigation's end, recorded)", b.investigation_completed_at is None),
            ("individuals_affected", b.individuals_affected is None),
            ("data_types", not body.data_types),
            ("responsible_employees", not body.responsible_employees),
            ("final_disposition", body.final_disposition is None),
        )
        if absent
    ]
    if missing:
        raise Unprocessable(
            "the report of an employee's unauthorized access names the type of data, the number of individuals, "
            f"each responsible employee and the final disposition: missing {', '.join(missing)}"
        )
    return {
        "data_types": body.data_types,
        "individuals_affected": b.individuals_affected,
        "responsible_employees": body.responsible_employees,
        "final_disposition": body.final_disposition,
    }


class BreachList(BaseModel):
    breaches: list[BreachOut]


@router.get("/v1/breaches", summary="The breach records, newest first, each duty with its due date and `overdue`")
async def list_breaches(
    principal: BreachReader, scope: Scoped, session: SessionDep, settings: SettingsDep
) -> BreachList:
    stmt = scope.where(select(BreachNotice), col(BreachNotice.agency))
    rows = await session.exec(stmt.order_by(col(BreachNotice.discovered_at).desc()).limit(1000))
    return BreachList(breaches=[_out(b, settings) for b in rows])


# ---- the annual security assessment (13.055 subd. 6) ------------------------------------------------------------


class AssessmentIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    performed_on: date
    performed_by: str = Field(min_length=2, max_length=300)
    summary: str = Field(min_length=10, max_length=20_000)


class AssessmentOut(BaseModel):
    assessment_id: uuid.UUID
    performed_on: date
    performed_by: str
    summary: str
    recorded_by: str
    recorded_at: datetime


class Assessments(BaseModel):
    last_performed_on: date | None
    due_on: date | None  # a year after the last (or after the agency's first person was made, when none is)
    overdue: bool
    every_days: int
    assessments: list[AssessmentOut]


def _assessment(a: SecurityAssessment) -> AssessmentOut:
    return AssessmentOut(
        assessment_id=a.id, performed_on=a.performed_on, performed_by=a.performed_by, summary=a.summary,
        recorded_by=a.recorded_by, recorded_at=a.recorded_at,
    )  # fmt: skip


@router.post("/v1/security-assessments", status_code=201, summary="Record the annual security assessment")
async def record_assessment(
    body: AssessmentIn, request: Request, principal: BreachWriter, scope: Scoped, session: SessionDep
) -> AssessmentOut:
    if body.performed_on > datetime.now(UTC).date():
        raise Unprocessable("record an assessment once it has been performed (performed_on is in the future)")
    a = SecurityAssessment(
        agency=scope.agency, performed_on=body.performed_on, performed_by=body.performed_by, summary=body.summary,
        recorded_by=principal.subject, recorded_at=datetime.now(UTC),
    )  # fmt: skip
    session.add(a)
    await session.flush()
    await events.record(
        session, "security_assessment.record", request=request, principal=principal, object_type="security_assessment",
        object_ids=[str(a.id)], details={"performed_on": body.performed_on.isoformat()},
    )  # fmt: skip
    return _assessment(a)


@router.get("/v1/security-assessments", summary="The agency's security assessments, and when the next is due")
async def list_assessments(principal: BreachReader, scope: Scoped, session: SessionDep) -> Assessments:
    stmt = scope.where(select(SecurityAssessment), col(SecurityAssessment.agency))
    rows = list(await session.exec(stmt.order_by(col(SecurityAssessment.performed_on).desc()).limit(100)))
    last, due = await assessment_status(session, scope.agency)
    return Assessments(
        last_performed_on=last.date() if last else None,
        due_on=due.date() if due else None,
        overdue=due is not None and due < datetime.now(UTC),
        every_days=ASSESSMENT_EVERY.days,
        assessments=[_assessment(a) for a in rows],
    )

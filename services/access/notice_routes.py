"""Routes of the BCA notices (Minn. Stat. 13.824 subd. 8): the register with the notices due, overdue and sent; a
supervisor or administrator records a notice sent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.access import notices, pdf
from services.access.deps import FiguresDep, allow
from services.access.report_routes import pdf_response
from shared.audit import client_ip, record
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import Unprocessable

router = APIRouter(tags=["reports"])
NoticeReader = Annotated[Principal, Depends(allow("supervisor", "auditor", "admin"))]
NoticeWriter = Annotated[Principal, Depends(allow("supervisor", "admin"))]


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sent_on: date = Field(description="the day the notice went to the BCA")
    recipient: str = Field(min_length=1, max_length=200, description="to whom")
    method: str = Field(min_length=1, max_length=100, description="how: e-mail, letter, portal")
    items: list[str] = Field(min_length=1, max_length=500, description="register item keys the notice covers")
    note: str | None = Field(default=None, max_length=2000)


class NoticeOut(BaseModel):
    notice_id: str
    sent_on: str
    recipient: str
    method: str
    items: list[str]
    readers: list[str]
    note: str | None
    recorded_by: str
    recorded_at: str


class NoticesReport(BaseModel):
    report: str
    statute: str
    as_of: str
    notice_days: int
    reader_register: dict[str, Any]
    items: list[dict[str, Any]]
    counts: dict[str, int]
    notices: list[NoticeOut]


@router.get(
    "/v1/reports/bca-notices",
    response_model=NoticesReport,
    summary="The register of readers and fixed locations; notices due (10 days), overdue and sent",
)
async def bca_notices(
    request: Request,
    principal: NoticeReader,
    session: SessionDep,
    figures: FiguresDep,
    as_of: date | None = Query(default=None, description="the day to judge due and overdue by (default today)"),
) -> Any:
    today = as_of or datetime.now(UTC).date()
    report = await notices.notices_report(session, figures, today, principal.agency)
    await record(
        session,
        service="access",
        action="report.bca_notices",
        principal=principal,
        source_ip=client_ip(request),
        details={"as_of": today.isoformat()},
    )
    return report


@router.post(
    "/v1/reports/bca-notices",
    status_code=201,
    response_model=NoticeOut,
    summary="Record a notice sent to the BCA: when, to whom, how, which register items",
)
async def record_notice(
    body: NoticeIn, request: Request, principal: NoticeWriter, session: SessionDep, figures: FiguresDep
) -> Any:
    notice = await notices.record_notice(
        session,
        figures,
        sent_on=body.sent_on,
        recipient=body.recipient,
        method=body.method,
        keys=body.items,
        note=body.note,
        recorded_by=principal.subject,
        agency=principal.agency,
    )
    await record(
        session,
        service="access",
        action="report.bca_notice_sent",
        principal=principal,
        object_type="bca_notice",
        object_ids=[str(notice.id)],
        source_ip=client_ip(request),
        details={"sent_on": body.sent_on.isoformat(), "items": notice.items},
    )
    return notices.notice_out(notice)


@router.get(
    "/v1/reports/bca-notices/letter",
    responses={200: {"content": {"application/pdf": {}}}},
    response_class=Response,
    summary="The notice letter to the BCA (PDF) for these register items (default: every one not yet sent)",
)
async def bca_letter(
    request: Request,
    principal: NoticeWriter,
    session: SessionDep,
    figures: FiguresDep,
    items: list[str] | None = Query(default=None, description="register item keys (repeat the parameter)"),
    as_of: date | None = Query(default=None, description="the letter's date (default today)"),
) -> Response:
    today = as_of or datetime.now(UTC).date()
    report = await notices.notices_report(session, figures, today, principal.agency)
    known = {i["key"]: i for i in report["items"]}
    if items:
        unknown = [k for k in items if k not in known]
        if unknown:
            raise Unprocessable(f"items not in the register: {', '.join(unknown)} (see GET /v1/reports/bca-notices)")
        chosen = [known[k] for k in dict.fromkeys(items)]
    else:
        chosen = [i for i in report["items"] if i["status"] != "sent"]
    if not chosen:
        raise Unprocessable("no register item to notify: every one has a notice recorded")
    agency = principal.agency or "the agency"
    letter = {
        "date": today.isoformat(),
        "to": "Minnesota Bureau of Criminal Apprehension",
        "from": f"{agency}, by {principal.subject}",
        "body": (
            f"Under Minn. Stat. 13.824 subd. 8, {agency} notifies the Bureau of the automated license plate readers "
            "below: each reader's first use, and each fixed reader's location (placed on the date given). The "
            "agency's policy governing their use is maintained and available on request."
        ),
        "items": chosen,
    }
    await record(
        session,
        service="access",
        action="report.bca_letter",
        principal=principal,
        source_ip=client_ip(request),
        details={"as_of": today.isoformat(), "items": [i["key"] for i in chosen]},
    )
    return pdf_response(pdf.bca_letter_pdf(letter), "bca-notice")

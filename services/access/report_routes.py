"""Routes of the statutory reports: the log of use (JSON, CSV; a public version without a token) and the biennial
audit report (JSON, printable HTML with charts). Each report is one agency's: the caller's (`Scoped`), or for the
public log of use the agency named in the query."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.access import pdf, report_html, reports
from services.access.deps import Auditor, FiguresDep, allow
from services.access.public_cache import PublicReports
from shared.audit import client_ip, record
from shared.auth import Principal
from shared.db import SessionDep
from shared.errors import Unprocessable
from shared.scoping import Scoped

router = APIRouter(tags=["reports"])
ReportReader = Annotated[Principal, Depends(allow("supervisor", "auditor", "admin"))]
MAX_PERIOD = timedelta(days=3 * 366)  # a biennial audit and some slack
PUBLIC_MAX_PERIOD = timedelta(days=366)


class LogOfUseOut(BaseModel):
    report: str
    statute: str
    public: bool
    agency: str
    period: dict[str, str]
    generated_at: str
    units: list[dict[str, Any]]
    fixed_readers: list[dict[str, Any]]
    databases_compared: dict[str, Any]
    totals: dict[str, Any]


class AuditReportOut(BaseModel):
    report: str
    statute: str
    agency: str
    period: dict[str, str]
    generated_at: str
    log_of_use: dict[str, Any]
    reads_per_day: dict[str, int]
    access: dict[str, Any]
    classification: dict[str, Any]
    hits: dict[str, Any]
    retention: dict[str, Any]
    audit_chain: dict[str, Any]


Start = Annotated[datetime, Query(description="period start, ISO 8601 with zone")]
End = Annotated[datetime, Query(description="period end (excluded), ISO 8601 with zone")]


def _period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("start and end need a time zone (e.g. 2026-01-01T00:00:00Z)")
    if end <= start:
        raise Unprocessable("end must follow start")
    if end - start > MAX_PERIOD:
        raise Unprocessable("the period is longer than three years: ask for it in parts")


def _csv(report: dict[str, Any], name: str) -> Response:
    return Response(
        reports.log_of_use_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


_FORMATS = {200: {"content": {"application/json": {}, "text/csv": {}, "application/pdf": {}}}}


def pdf_response(content: bytes, name: str) -> Response:
    return Response(
        content, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'}
    )


def _log_out(report: dict[str, Any], format: str, name: str) -> Any:
    if format == "csv":
        return _csv(report, name)
    if format == "pdf":
        return pdf_response(pdf.log_of_use_pdf(report), name)
    return JSONResponse(report)  # already plain JSON values: no second validation of thousands of rows


async def _record_report(
    session: AsyncSession,
    request: Request,
    principal: Principal,
    action: str,
    start: date,
    end: date,
    format: str,
    **more: str,
) -> None:
    """Every report made is in the audit log: who asked, for which period, in which form."""
    await record(
        session,
        service="access",
        action=action,
        principal=principal,
        source_ip=client_ip(request),
        details={"start": start.isoformat(), "end": end.isoformat(), "format": format, **more},
    )


@router.get("/v1/reports/log-of-use", response_model=LogOfUseOut, responses=_FORMATS, summary="The log of use")
async def log_of_use(
    request: Request,
    principal: ReportReader,
    scope: Scoped,
    session: SessionDep,
    figures: FiguresDep,
    start: Start,
    end: End,
    format: Literal["json", "csv", "pdf"] = "json",
) -> Any:
    _period(start, end)
    report = await reports.log_of_use(figures, start, end, agency=scope.agency, public=False)
    await _record_report(session, request, principal, "report.log_of_use", start, end, format)
    return _log_out(report, format, "log-of-use")


@router.get(
    "/v1/public/log-of-use",
    response_model=LogOfUseOut,
    responses=_FORMATS,
    summary="The public log of use: no token, no personal data (no badge, shift or covert list)",
)
async def public_log_of_use(
    request: Request,
    figures: FiguresDep,
    start: Start,
    end: End,
    agency: Annotated[str, Query(min_length=1, max_length=32, description="the agency (ORI) whose log of use")],
    format: Literal["json", "csv", "pdf"] = "json",
) -> Any:
    _period(start, end)
    if end - start > PUBLIC_MAX_PERIOD:
        raise Unprocessable("a public report covers at most a year: ask for it in parts")
    cache: PublicReports = request.app.state.public_reports
    report = await cache.get(client_ip(request) or "unknown", agency, start, end, lambda: reports.log_of_use(
        figures, start, end, agency=agency, public=True))  # fmt: skip
    return _log_out(report, format, "log-of-use-public")


@router.get(
    "/v1/reports/audit",
    response_model=AuditReportOut,
    responses={200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
    summary="The biennial audit report (JSON, printable HTML or PDF, with charts)",
)
async def audit_report(
    request: Request,
    principal: Auditor,
    scope: Scoped,
    session: SessionDep,
    figures: FiguresDep,
    start: Start,
    end: End,
    format: Literal["json", "html", "pdf"] = "json",
) -> Any:
    _period(start, end)
    report = await reports.audit_report(session, figures, start, end, agency=scope.agency)
    await _record_report(session, request, principal, "report.audit", start, end, format)
    if format == "html":
        return Response(report_html.audit_html(report), media_type="text/html; charset=utf-8")
    if format == "pdf":
        return pdf_response(pdf.audit_pdf(report), "biennial-audit")
    return JSONResponse(report)


class CommissionerSummaryOut(BaseModel):
    report: str
    statute: str
    agency: str
    period: dict[str, str]
    generated_at: str
    completed_on: str
    due_by: str
    recipients: list[str]
    findings: dict[str, Any]
    hits_by_category: dict[str, int]
    classification: dict[str, int]
    statement: str


@router.get(
    "/v1/reports/commissioner-summary",
    response_model=CommissionerSummaryOut,
    responses={200: {"content": {"application/json": {}, "application/pdf": {}}}},
    summary="The audit summary for the commissioner, legislative chairs and the LCDP (subd. 6(c)), JSON or PDF",
)
async def commissioner_summary(
    request: Request,
    principal: Auditor,
    scope: Scoped,
    session: SessionDep,
    figures: FiguresDep,
    start: Start,
    end: End,
    completed_on: date | None = Query(default=None, description="the day the audit was completed (default today)"),
    format: Literal["json", "pdf"] = "json",
) -> Any:
    _period(start, end)
    audit = await reports.audit_report(session, figures, start, end, agency=scope.agency)
    summary = reports.commissioner_summary(audit, completed_on=completed_on or datetime.now(UTC).date())
    # The completion day is kept: the public transparency page shows the last audit and links its summary.
    await _record_report(
        session, request, principal, "report.commissioner_summary", start, end, format,
        completed_on=summary["completed_on"],
    )  # fmt: skip
    if format == "pdf":
        return pdf_response(pdf.commissioner_summary_pdf(summary), "audit-summary")
    return summary

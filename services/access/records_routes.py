"""Records a records request asks for: the audit trail as CSV (filtered by period, actor, case). The breach records
(Minn. Stat. 13.055) are services/access/breach_routes.py's."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import col, func, select

from services.access import events
from services.access.deps import Auditor
from shared.audit import AuditEntry
from shared.db import SessionDep
from shared.errors import Unprocessable
from shared.scoping import Scoped
from shared.text import csv_cell

router = APIRouter(tags=["records"])
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

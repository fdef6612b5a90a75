"""Counts of data subjects' requests for access's public page and dashboard: how many Safe at Home and exculpatory
requests an agency received in a period, and how many Safe at Home requests still wait for a second supervisor.
Counts only: never a plate, a requester or a case number (the requests themselves are private data)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text

from services.ingest.deps import Service
from shared.db import SessionDep
from shared.errors import Unprocessable
from shared.service_callers import ACCESS_ONLY, check_caller

router = APIRouter(tags=["internal"])


class SubjectCounts(BaseModel):
    agency: str
    safe_at_home: int
    exculpatory: int
    safe_at_home_pending: int
    safe_at_home_pending_oldest: datetime | None


@router.get("/v1/internal/subject-requests/counts", summary="Subjects' requests received (counts only, access)")
async def subject_counts(
    principal: Service,
    session: SessionDep,
    start: datetime = Query(description="period start, ISO 8601 with zone"),
    end: datetime = Query(description="period end, ISO 8601 with zone"),
    agency: str = Query(default="", max_length=32, description="the custodian agency (ORI)"),
) -> SubjectCounts:
    check_caller(principal, ACCESS_ONLY)  # access's reports only: figures are not another service's
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise Unprocessable("start and end need a zone, and end must follow start")
    p = {"s": start, "e": end, "agency": agency}
    sah = (
        await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE received_on >= :s AND received_on < :e), "
                "count(*) FILTER (WHERE pending), min(received_on) FILTER (WHERE pending) "
                "FROM ingest.protected_plates WHERE agency = :agency"
            ),
            p,
        )
    ).one()
    exculpatory = (
        await session.execute(
            text(
                "SELECT count(*) FROM ingest.subject_requests r JOIN ingest.holds h ON h.id = r.hold_id "
                "WHERE h.agency = :agency AND r.received_on >= :s AND r.received_on < :e"
            ),
            p,
        )
    ).scalar_one()
    return SubjectCounts(
        agency=agency,
        safe_at_home=sah[0],
        exculpatory=exculpatory,
        safe_at_home_pending=sah[1],
        safe_at_home_pending_oldest=sah[2],
    )

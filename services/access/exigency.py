"""Warrants and exigencies of a data request: a warrant number in the court's format (configurable), an exigency
with its facts (what, when, who approved it), and the audit report's list of every search made under an exigency.

Kept apart from the request's other rules (which plates and areas need a warrant at all: schemas/workflow)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.schemas import ExigencyIn, RequestIn
from shared.errors import Unprocessable
from shared.settings import Settings


def check(settings: Settings, body: RequestIn) -> RequestIn:
    """The request with its exigency statement carrying its facts; 422 when a warrant number is not in the
    court's format or an exigency comes without its facts."""
    if body.warrant_number is not None and not re.fullmatch(settings.warrant_number_format, body.warrant_number):
        raise Unprocessable(
            f"warrant_number {body.warrant_number!r} is not a court file number "
            f"(ALPR_WARRANT_NUMBER_FORMAT: {settings.warrant_number_format})"
        )
    if body.exigency is not None and not body.exigency_attestation:
        raise Unprocessable("exigency facts need the exigency_attestation they support")
    if body.exigency_attestation is None:
        return body
    if body.exigency is None:
        raise Unprocessable(
            "an exigency needs its facts: `exigency` with `what` happened, `when`, and who `approved_by` it"
        )
    now = datetime.now(UTC)
    if body.exigency.when > now + timedelta(minutes=5):
        raise Unprocessable("exigency.when is in the future: an exigency is something that has happened")
    return body.model_copy(update={"exigency_attestation": statement(body.exigency_attestation, body.exigency)})


def statement(attestation: str, facts: ExigencyIn) -> str:
    """What the version and its grant keep: the attestation and its facts, in one record."""
    return f"{attestation}\nFacts: what: {facts.what}; when: {facts.when.isoformat()}; approved by: {facts.approved_by}"


async def searches(session: AsyncSession, start: datetime, end: datetime, agency: str) -> list[dict[str, Any]]:
    """Every search of the period made under a grant that rests on an exigency (the audit report lists each)."""
    rows = await session.execute(
        text(
            "SELECT a.at, a.actor, a.grant_id, a.case_number, a.record_count, g.exigency_attestation, "
            "g.warrant_number FROM audit.audit_log a JOIN access.grants g ON a.grant_id = g.id::text "
            "WHERE a.service = 'access' AND a.action = 'reads.search' AND a.outcome = 'ok' "
            "AND g.exigency_attestation IS NOT NULL AND coalesce(g.data_agency, '') = :agency "
            "AND a.at >= :s AND a.at < :e ORDER BY a.seq"
        ),
        {"s": start, "e": end, "agency": agency},
    )
    return [
        {
            "at": r.at.isoformat(),
            "actor": r.actor,
            "grant_id": r.grant_id,
            "case_number": r.case_number,
            "records": r.record_count,
            "exigency": r.exigency_attestation,
            "warrant_number": r.warrant_number,
        }
        for r in rows
    ]

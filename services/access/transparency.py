"""The figures of an agency's public transparency page (Minn. Stat. 13.824 subd. 5: the log of use is public).

Reads, hits, units and fixed readers come from the public log of use, counted from the daily facts (so the page
reads the same after a purge), covert-list hits counted in their category without the list; requests, searches and
the audit summary come from access's own tables and audit log, which the read purge does not touch; subjects'
requests are counts that ingest serves. Nothing here names a plate, a person, a case, a read's position or a list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.access import reports
from shared.settings import Settings

DAYS_RECENT = 30
# From the policy (3.5, "Data collected"): what a read holds, and what the system never collects or searches.
COLLECTED = (
    "the licence plate's characters as read",
    "the date and time of the read",
    "the place of the read (the reader's position)",
    "a photograph of the vehicle and of its plate",
)
NOT_COLLECTED = (
    "the vehicle's heading or speed",
    "faces: photographs are never searched for people",
    "the names or addresses of registered owners",
    "sound",
)


def period(today: date) -> tuple[datetime, datetime]:
    """From the first day of the month eleven months back to the end of today: twelve calendar months."""
    month = today.month - 11
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def _months(start: datetime, end: datetime) -> list[str]:
    out, y, m = [], start.year, start.month
    while datetime(y, m, 1, tzinfo=UTC) < end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _basis(legal_basis: str | None, warrant: bool, exigency: bool) -> str:
    """How a search was allowed: a warrant or an exigency named on the grant first, then the request's basis."""
    if warrant:
        return "warrant"
    if exigency:
        return "exigency"
    if legal_basis == "court_order":
        return "court order"
    if legal_basis == "agency_request":
        return "grant (another agency's request)"
    return "grant (investigation)"


async def _access_counts(session: AsyncSession, agency: str, start: datetime, end: datetime) -> dict[str, Any]:
    p = {"s": start, "e": end, "agency": agency}
    # Searches of this agency's data: each `reads.search` entry in the audit log with the grant it ran under.
    searches = (
        await session.execute(
            text(
                "SELECT v.legal_basis, g.warrant_number IS NOT NULL, g.exigency_attestation IS NOT NULL, count(*) "
                "FROM audit.audit_log a "
                "JOIN access.grants g ON g.id::text = a.grant_id "
                "JOIN access.request_versions v ON v.request_id = g.request_id AND v.version = g.version "
                "WHERE a.action = 'reads.search' AND a.outcome = 'ok' AND a.at >= :s AND a.at < :e "
                "AND coalesce(g.data_agency, a.agency, '') = :agency "
                "GROUP BY 1, 2, 3"
            ),
            p,
        )
    ).all()
    by_basis: dict[str, int] = {}
    for legal_basis, warrant, exigency, n in searches:
        key = _basis(legal_basis, warrant, exigency)
        by_basis[key] = by_basis.get(key, 0) + n
    decided = (
        await session.execute(
            text(
                "SELECT d.decision, count(*) FROM access.decisions d JOIN access.requests r ON r.id = d.request_id "
                "WHERE d.decided_at >= :s AND d.decided_at < :e AND " + reports._OURS + " GROUP BY d.decision"
            ),
            p,
        )
    ).all()
    decisions = {k: n for k, n in decided}
    return {
        "searches": sum(by_basis.values()),
        "searches_by_basis": dict(sorted(by_basis.items())),
        "requests_approved": decisions.get("approve", 0),
        "requests_denied": decisions.get("deny", 0),
    }


async def last_audit(session: AsyncSession, agency: str) -> dict[str, Any] | None:
    """The agency's last biennial audit: the latest commissioner's summary its auditor made (audit log)."""
    row = (
        await session.execute(
            text(
                "SELECT details, at FROM audit.audit_log WHERE action = 'report.commissioner_summary' "
                "AND outcome = 'ok' AND coalesce(agency, '') = :agency ORDER BY seq DESC NULLS LAST, at DESC LIMIT 1"
            ),
            {"agency": agency},
        )
    ).first()
    if row is None:
        return None
    details: dict[str, Any] = row[0]
    completed = details.get("completed_on") or row[1].date().isoformat()
    return {"start": details["start"], "end": details["end"], "completed_on": completed}


async def page(
    session: AsyncSession, figures: reports.FiguresClient, settings: Settings, agency: str, today: date
) -> dict[str, Any]:
    start, end = period(today)
    log = await reports.log_of_use(figures, start, end, agency=agency, public=True)
    recent_from = (today - timedelta(days=DAYS_RECENT - 1)).isoformat()
    months = _months(start, end)
    reads_month = dict.fromkeys(months, 0)
    hits_month = dict.fromkeys(months, 0)
    reads_recent = 0
    hits_recent: dict[str, int] = {}
    hits_year: dict[str, int] = {}
    for u in log["units"]:
        for d in u["days"]:
            m = d["day"][:7]
            reads_month[m] = reads_month.get(m, 0) + d["reads"]
            hits_month[m] = hits_month.get(m, 0) + d["hits"]
            for cat, n in d["hits_by_category"].items():
                hits_year[cat] = hits_year.get(cat, 0) + n
                if d["day"] >= recent_from:
                    hits_recent[cat] = hits_recent.get(cat, 0) + n
            if d["day"] >= recent_from:
                reads_recent += d["reads"]
    fixed = [
        {
            "name": r["reader"],
            "locations": [
                {"lat": loc["lat"], "lon": loc["lon"], "placed_on": loc["placed_on"], "until": loc["until"]}
                for loc in r["locations"]
            ],
        }
        for r in log["fixed_readers"]
    ]
    fixed_names = {r["name"] for r in fixed}
    subjects = await figures.get("ingest", "/v1/internal/subject-requests/counts", start, end, agency=agency)
    audit = await last_audit(session, agency)
    policy_url = settings.transparency_policy_url.replace("{agency}", agency)
    return {
        "agency": agency,
        "period": {"start": start.date().isoformat(), "end": (end.date() - timedelta(days=1)).isoformat()},
        "recent": {"from": recent_from, "to": today.isoformat()},
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "collected": COLLECTED,
        "not_collected": NOT_COLLECTED,
        "retention_days": settings.retention_days,
        "fixed_readers": fixed,
        "mobile_units": len({u["unit"] for u in log["units"] if u["unit"] not in fixed_names}),
        "reads_recent": reads_recent,
        "hits_recent": dict(sorted(hits_recent.items())),
        "reads_year": log["totals"]["reads"],
        "hits_year": dict(sorted(hits_year.items())),
        "reads_by_month": reads_month,
        "hits_by_month": hits_month,
        "access": await _access_counts(session, agency, start, end),
        "safe_at_home": subjects["safe_at_home"],
        "exculpatory": subjects["exculpatory"],
        "last_audit": audit,
        "policy_url": policy_url,
    }

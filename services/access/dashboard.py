"""The compliance dashboard's figures for one agency: what its supervisors, auditors and admins must act on.

No second source of truth: access's own records through the same queries its API runs (grants, BCA notices,
breaches, the audit log), and the other services' records through their APIs over HTTP: ingest's hold reviews with
the viewer's own token (so ingest applies the viewer's role and agency as for any API call), ingest's purge runs and
subjects' request counts and hotlist's list version on their internal endpoints (service token, the viewer's agency
named)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from services.access import breach_duties, notices
from services.access.notice_models import BreachNotice
from services.access.reports import FiguresClient
from shared.audit_seal import CHECKPOINT_PREFIX
from shared.http import service_client
from shared.scoping import Scope
from shared.settings import Settings
from shared.storage import ObjectStore, StorageError

GRANT_WINDOW = timedelta(days=7)
REVIEW_WINDOW_DAYS = 30


async def _as_viewer(figures: FiguresClient, service: str, path: str, token: str, **params: Any) -> dict[str, Any]:
    """A GET on another service's API with the viewer's token: that service's own role and agency checks apply."""
    try:
        async with service_client(
            figures.urls[service], timeout_s=figures.timeout_s, transport=figures.transports.get(service)
        ) as client:
            resp = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return {"error": f"the {service} service is unreachable: retry later"}
    if resp.status_code == 403:
        return {"error": f"not shown: the {service} API does not give this to your role"}
    if resp.status_code != 200:
        return {"error": f"the {service} service answered {resp.status_code}: retry later"}
    data: dict[str, Any] = resp.json()
    return data


async def _grants(session: AsyncSession, agency: str, now: datetime) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            text(
                "SELECT id, request_id, case_number, holder, expires_at FROM access.grants "
                "WHERE coalesce(data_agency, holder_agency, '') = :agency AND revoked_at IS NULL "
                "AND expires_at > :now AND expires_at <= :by ORDER BY expires_at"
            ),
            {"agency": agency, "now": now, "by": now + GRANT_WINDOW},
        )
    ).all()
    return [
        {"grant_id": str(r[0]), "request_id": str(r[1]), "case_number": r[2], "holder": r[3],
         "expires_at": r[4].isoformat()}
        for r in rows
    ]  # fmt: skip


async def _breaches(session: AsyncSession, scope: Scope, settings: Settings) -> list[dict[str, Any]]:
    """Open: a duty of 13.055 not yet done (the notices, the report), each with its due date and `overdue`."""
    stmt = scope.where(select(BreachNotice), col(BreachNotice.agency))
    rows = (await session.execute(stmt.order_by(col(BreachNotice.discovered_at).desc()).limit(1000))).scalars()
    return [s for s in (breach_duties.summary(b, settings) for b in rows) if s["duties"]]


async def _assessment(session: AsyncSession, agency: str, now: datetime) -> dict[str, Any]:
    last, due = await breach_duties.assessment_status(session, agency)
    return {
        "last": last.date().isoformat() if last else None,
        "due": due.date().isoformat() if due else None,
        "overdue": due is not None and due < now,
    }


async def _last_verify(session: AsyncSession, agency: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text(
                "SELECT at, outcome, details FROM audit.audit_log WHERE action = 'audit.verify' "
                "AND coalesce(agency, '') = :agency ORDER BY seq DESC NULLS LAST, at DESC LIMIT 1"
            ),
            {"agency": agency},
        )
    ).first()
    if row is None:
        return None
    return {"at": row[0].isoformat(), "ok": row[1] == "ok", "entries": (row[2] or {}).get("entries")}


async def _checkpoint(store: ObjectStore) -> dict[str, Any] | None:
    """The chain's last signed checkpoint: the chain is the back office's, one for every agency."""
    try:
        keys = sorted(await store.list(CHECKPOINT_PREFIX))  # named by entry count, zero-padded: the last is newest
        if not keys:
            return None
        last = json.loads(await store.get(keys[-1]))
    except (StorageError, ValueError):
        return None
    return {"at": str(last.get("at", ""))[:16], "entries": last.get("count")}


def _age_hours(version: dict[str, Any]) -> float | None:
    age = version.get("age_s")
    return None if age is None else round(float(age) / 3600, 1)


async def dashboard(
    session: AsyncSession,
    figures: FiguresClient,
    settings: Settings,
    store: ObjectStore,
    scope: Scope,
    token: str,
    public_urls: dict[str, str],
) -> dict[str, Any]:
    """`scope`: the viewer's (`shared.scoping`), whose agency every query and call names."""
    principal, agency = scope.principal, scope.agency
    now = datetime.now(UTC)
    today: date = now.date()
    holds = await _as_viewer(figures, "ingest", "/v1/holds/reviews", token, within_days=REVIEW_WINDOW_DAYS)
    if "error" not in holds:
        holds = {
            "rows": [{**h, "review_on": str(h["review_on"])} for h in holds["holds"]],
            "overdue": sum(1 for h in holds["holds"] if h["overdue"]),
        }
    month_ago = now - timedelta(days=30)
    # An unreachable service answers 503 for the whole page (Unavailable): a dashboard with a hole would read as "fine".
    ret = await figures.get("ingest", "/v1/internal/retention", month_ago, now, agency=agency)
    subjects = await figures.get(
        "ingest", "/v1/internal/subject-requests/counts", month_ago, now + timedelta(seconds=1), agency=agency
    )
    version = await figures.get("hotlist", "/v1/hotlist/version")
    hotlist: dict[str, Any] = {**version, "age_h": _age_hours(version)}
    last = ret["purges"][-1] if ret["purges"] else None
    nxt = None
    if settings.retention_purge_scheduled and last is not None:
        nxt = (
            datetime.fromisoformat(last["finished_at"] or last["started_at"])
            + timedelta(seconds=settings.retention_purge_interval_s)
        ).isoformat(timespec="minutes")
    report = await notices.notices_report(session, figures, today, agency)
    unsent = [
        {**i, "label": f"{i['reader']}: {i['event'].replace('_', ' ')}"}
        for i in report["items"]
        if i["status"] != "sent"
    ]
    return {
        "agency": agency,
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "as_of": now.isoformat(timespec="seconds"),
        "urls": public_urls,
        "holds": holds,
        "subjects": {
            "safe_at_home_pending": subjects["safe_at_home_pending"],
            "safe_at_home_pending_oldest": subjects["safe_at_home_pending_oldest"],
        },
        "grants": await _grants(session, agency, now),
        "purge": {"last": last, "next": nxt, "retention_days": settings.retention_days},
        "hotlist": hotlist,
        "verify": await _last_verify(session, agency),
        "checkpoint": await _checkpoint(store),
        "notices": unsent,
        "breaches": await _breaches(session, scope, settings),
        "security_assessment": await _assessment(session, agency, now),
    }

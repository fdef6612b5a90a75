"""Notices to the BCA (Minn. Stat. 13.824 subd. 8): the agency notifies the BCA within 10 days of a reader's first use
and of a fixed reader's change of location. The register of readers comes from ingest (internal endpoint); the
notices sent are recorded here. Each register item is due on its date plus 10 days, sent once a notice covers it,
overdue when neither and the day has passed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.access.notice_models import BcaNotice
from services.access.reports import FiguresClient
from shared.errors import Unprocessable

NOTICE_DAYS = 10


def _items(reg: dict[str, Any], agency: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for r in reg["readers"]:
        if r["first_use"] is None or (agency and r["agency"] and r["agency"] != agency):
            continue
        on = datetime.fromisoformat(r["first_use"]).astimezone(UTC).date()
        items.append(
            {
                "key": f"first_use:{r['reader_id']}",
                "event": "first_use",
                "reader_id": r["reader_id"],
                "reader": r["name"],
                "kind": r["kind"],
                "on": on,
            }
        )
    for loc in reg["fixed_locations"]:
        if not loc["change"] or (agency and loc["agency"] != agency):
            continue
        items.append(
            {
                "key": f"location:agent:{loc['agent_id']}:{loc['placed_on']}",
                "event": "location_change",
                "reader_id": f"agent:{loc['agent_id']}",
                "reader": loc["name"],
                "kind": "fixed",
                "on": date.fromisoformat(loc["placed_on"]),
                "lat": loc["lat"],
                "lon": loc["lon"],
            }
        )
    for it in items:
        it["due_by"] = it["on"] + timedelta(days=NOTICE_DAYS)
    items.sort(key=lambda i: (i["due_by"], i["key"]))
    return items


def _legacy_unit_keys(reg: dict[str, Any]) -> dict[str, str]:
    """Notices recorded before units were keyed by agency name `first_use:unit:<unit>`: such a key still covers
    the one agency's unit of that name (where two agencies have one, it is ambiguous and covers neither)."""
    by_unit: dict[str, list[str]] = {}
    for r in reg["readers"]:
        if r["kind"] == "unit" and r.get("agency"):
            by_unit.setdefault(r["unit"], []).append(r["reader_id"])
    return {f"first_use:unit:{u}": f"first_use:{ids[0]}" for u, ids in by_unit.items() if len(ids) == 1}


def notice_out(n: BcaNotice) -> dict[str, Any]:
    return {
        "notice_id": str(n.id),
        "sent_on": n.sent_on.isoformat(),
        "recipient": n.recipient,
        "method": n.method,
        "items": list(n.items),
        "readers": list(n.readers),
        "note": n.note,
        "recorded_by": n.recorded_by,
        "recorded_at": n.recorded_at.isoformat(),
    }


async def _notices(session: AsyncSession) -> list[BcaNotice]:
    rows = await session.execute(select(BcaNotice).order_by(BcaNotice.sent_on, BcaNotice.recorded_at))  # type: ignore[arg-type]
    return list(rows.scalars())


async def notices_report(
    session: AsyncSession, figures: FiguresClient, today: date, agency: str | None
) -> dict[str, Any]:
    reg = await figures.get("ingest", "/v1/internal/readers")
    notices = await _notices(session)
    if agency:
        # Another agency's notices name its readers: a notice is the caller's when it covers one of its readers.
        ours = {r["reader_id"] for r in reg["readers"] if r["agency"] in (agency, None, "")}
        notices = [n for n in notices if set(n.readers) & ours]
    covered: dict[str, BcaNotice] = {}
    legacy = _legacy_unit_keys(reg)
    for n in notices:  # the earliest notice covering an item counts
        for key in n.items:
            covered.setdefault(legacy.get(key, key), n)
    items = []
    for it in _items(reg, agency):
        n = covered.get(it["key"])
        if n is not None:
            status = "sent"
        elif today > it["due_by"]:
            status = "overdue"
        else:
            status = "due"
        items.append(
            {
                **it,
                "on": it["on"].isoformat(),
                "due_by": it["due_by"].isoformat(),
                "status": status,
                "overdue": status == "overdue",
                "days_left": (it["due_by"] - today).days if status == "due" else None,
                "notice_id": str(n.id) if n else None,
                "sent_on": n.sent_on.isoformat() if n else None,
                "sent_late": bool(n and n.sent_on > it["due_by"]),
            }
        )
    readers = [r for r in reg["readers"] if not (agency and r["agency"] and r["agency"] != agency)]
    locations = [loc for loc in reg["fixed_locations"] if not (agency and loc["agency"] != agency)]
    return {
        "report": "bca_notices",
        "statute": "Minn. Stat. 13.824 subd. 8",
        "as_of": today.isoformat(),
        "notice_days": NOTICE_DAYS,
        "reader_register": {"readers": readers, "fixed_locations": locations},
        "items": items,
        "counts": {s: sum(1 for i in items if i["status"] == s) for s in ("due", "overdue", "sent")},
        "notices": [notice_out(n) for n in notices],
    }


async def record_notice(
    session: AsyncSession,
    figures: FiguresClient,
    *,
    sent_on: date,
    recipient: str,
    method: str,
    keys: list[str],
    note: str | None,
    recorded_by: str,
    agency: str | None,
) -> BcaNotice:
    if sent_on > datetime.now(UTC).date():
        raise Unprocessable("sent_on is in the future: record a notice once it has gone")
    reg = await figures.get("ingest", "/v1/internal/readers")
    known = {it["key"]: it for it in _items(reg, agency)}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise Unprocessable(f"items not in the register: {', '.join(unknown)} (see GET /v1/reports/bca-notices)")
    wanted = list(dict.fromkeys(keys))
    notice = BcaNotice(
        id=uuid.uuid4(),
        sent_on=sent_on,
        recipient=recipient,
        method=method,
        items=wanted,
        readers=list(dict.fromkeys(known[k]["reader_id"] for k in wanted)),
        note=note,
        recorded_by=recorded_by,
        recorded_at=datetime.now(UTC),
    )
    session.add(notice)
    await session.flush()
    return notice

"""The stream's events: hits and notices as rows of `ingest.stream_events`, and reading them back for a car's unit
or an agency (the live push is stream.py's hub)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ingest.models import StreamEvent

log = structlog.get_logger(__name__)

HIT_NOTICE = "A hit alone is not probable cause: confirm the hit before acting."
STREAM = StreamEvent.__table__  # type: ignore[attr-defined]


COVERT_HIT = "covert_hit"  # an event for the list owner's agency stream, never for a car


async def add_hit_events(
    session: AsyncSession | AsyncConnection, hits: list[dict[str, Any]], read: dict[str, Any]
) -> int:
    """Queue hits for the read's unit; covert hits go to the list owner's agency stream, never to a car.
    Returns how many are new."""
    added = 0
    for hit in hits:
        covert = bool(hit.get("covert"))
        if covert and not hit.get("list_owner"):
            log.warning("covert_hit_without_owner", hit_id=hit.get("hit_id"))
            continue
        payload = {
            **hit,
            "notice": hit.get("notice") or HIT_NOTICE,
            "read": {
                "read_id": str(read["id"]),
                "plate": read["plate"],
                "state": read["state"],
                "captured_at": read["captured_at"].isoformat(),
                "lat": read["lat"],
                "lon": read["lon"],
                "camera": read["camera"],
            },
        }
        result = await session.execute(
            insert(STREAM)
            .values(
                kind=COVERT_HIT if covert else "hit",
                unit=None if covert else read["unit"],
                agency=hit["list_owner"] if covert else (read["agency"] or None),
                read_id=read["id"],
                captured_at=read["captured_at"],
                dedupe_key=f"hit:{hit.get('hit_id')}",
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        added += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return added


async def add_notice(session: AsyncSession, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
    result = await session.execute(
        insert(STREAM)
        .values(kind=kind, unit=None, agency=None, dedupe_key=dedupe_key, payload=payload)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def events_since(
    session: AsyncSession,
    unit: str,
    agency: str | None,
    since: int,
    limit: int = 100,
    *,
    not_before: datetime | None = None,
    shift_id: uuid.UUID | None = None,
) -> list[StreamEvent]:
    """The unit's events after `since`: its hits (its own agency's, from `not_before` on: the open shift's start,
    so a stream is live events, never history) and the hot-list notices. With `shift_id` (an officer's stream) the
    unit's hits are those of that shift's own reads, and only while it is open: in the same query, so the next
    shift's hits never reach a stream that has not yet noticed its shift ended, at no extra query."""
    pinned = (
        " AND EXISTS (SELECT 1 FROM ingest.shifts s WHERE s.id = :shift AND s.ended_at IS NULL "
        "AND s.expires_at > now()) AND EXISTS (SELECT 1 FROM ingest.reads r WHERE r.id = stream_events.read_id "
        "AND r.captured_at = stream_events.captured_at AND r.shift_id = :shift)"
        if shift_id is not None
        else ""
    )
    params: dict[str, Any] = {
        "unit": unit,
        "agency": agency,
        "floor": not_before or datetime.min.replace(tzinfo=UTC),
    }
    if shift_id is not None:
        params["shift"] = shift_id
    rows = await session.execute(
        select(StreamEvent)
        .where(
            StreamEvent.id > since,  # type: ignore[operator]
            StreamEvent.kind != COVERT_HIT,  # type: ignore[arg-type]
            text(
                f"((unit = :unit AND agency IS NOT DISTINCT FROM :agency AND created_at >= :floor{pinned}) "
                "OR (unit IS NULL AND (agency IS NULL OR agency = :agency)))"
            ),
        )
        .params(**params)
        .order_by(StreamEvent.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list(rows.scalars())


async def last_event_id(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT coalesce(max(id), 0) FROM ingest.stream_events"))).scalar() or 0)


async def agency_events_since(session: AsyncSession, agency: str, since: int, limit: int = 100) -> list[StreamEvent]:
    """The agency's own stream: covert hits on the lists it owns."""
    rows = await session.execute(
        select(StreamEvent)
        .where(
            StreamEvent.id > since,  # type: ignore[operator]
            StreamEvent.kind == COVERT_HIT,  # type: ignore[arg-type]
            StreamEvent.agency == agency,  # type: ignore[arg-type]
        )
        .order_by(StreamEvent.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list(rows.scalars())

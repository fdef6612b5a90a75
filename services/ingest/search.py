"""The internal read queries of docs/contracts.md: past-read lookup (hotlist) and archived-read search (access)."""

from __future__ import annotations

import base64
import json
import math
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, tuple_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ingest.schemas import SearchRead, SearchRequest, SearchResponse
from services.ingest.writer import READS
from shared import plates
from shared.errors import Unprocessable

EARTH_RADIUS_M = 6_371_000.0
MAX_WINDOW_DAYS = 400


def _like(pattern: str) -> str:
    # Normalized patterns hold only letters, digits, * and ?: nothing for LIKE to escape.
    return pattern.replace("*", "%").replace("?", "_")


def encode_cursor(captured_at: datetime, read_id: uuid.UUID) -> str:
    raw = json.dumps([captured_at.isoformat(), str(read_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rid = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(rid)
    except (ValueError, TypeError) as exc:
        raise Unprocessable("cursor: not a cursor this service issued") from exc


async def search(session: AsyncSession, body: SearchRequest) -> SearchResponse:
    if body.end <= body.start:
        raise Unprocessable("end must be after start")
    if (body.end - body.start).days > MAX_WINDOW_DAYS:
        raise Unprocessable(f"the time window is at most {MAX_WINDOW_DAYS} days")
    conds: list[ColumnElement[bool]] = [READS.c.captured_at >= body.start, READS.c.captured_at < body.end]
    plate_conds: list[ColumnElement[bool]] = []
    for pattern in body.plates:
        if body.misread_tolerant:
            # Confusable characters share a key: ABC123 finds A8C1Z3; wildcards pass through confusion_key.
            plate_conds.append(READS.c.confusion_key.like(_like(plates.confusion_key(pattern))))
        else:
            plate_conds.append(READS.c.plate.like(_like(pattern)))
    if plate_conds:
        conds.append(or_(*plate_conds))
    if body.agency is not None:
        conds.append(READS.c.agency == body.agency)
    params: dict[str, Any] = {}
    if body.area is not None:
        a = body.area
        dlat = math.degrees(a.radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(math.cos(math.radians(a.lat)), 1e-6)
        conds += [READS.c.lat.between(a.lat - dlat, a.lat + dlat), READS.c.lon.between(a.lon - dlon, a.lon + dlon)]
        conds.append(
            text(
                "2 * 6371000 * asin(sqrt(power(sin(radians(lat - :alat) / 2), 2) + cos(radians(:alat)) "
                "* cos(radians(lat)) * power(sin(radians(lon - :alon) / 2), 2))) <= :arad"
            )
        )
        params = {"alat": a.lat, "alon": a.lon, "arad": a.radius_m}
    if body.cursor:
        at, rid = decode_cursor(body.cursor)
        conds.append(tuple_(READS.c.captured_at, READS.c.id) > tuple_(at, rid))  # type: ignore[arg-type]
    stmt = (
        select(READS)
        .where(and_(*conds))
        .order_by(READS.c.captured_at, READS.c.id)
        .limit(body.limit + 1)
        .params(**params)
    )
    # asyncpg prepares statements, and after five runs PostgreSQL may keep a generic plan, in which a LIKE pattern
    # is an unknown parameter: no prefix range on the plate index, so a selective search (a prefix inside a small
    # circle) scans the whole window by capture time. A custom plan per search costs ~10 ms of planning.
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = (await session.execute(stmt)).all()
    page = rows[: body.limit]
    reads = [
        SearchRead(
            read_id=r.id,
            plate=r.plate,
            state=r.state,
            captured_at=r.captured_at,
            lat=r.lat,
            lon=r.lon,
            unit=r.unit,
            camera=r.camera,
            agency=r.agency or None,
            image_key=r.image_key,
            crop_key=r.crop_key,
            classification=r.classification,
        )
        for r in page
    ]
    next_cursor = encode_cursor(page[-1].captured_at, page[-1].id) if len(rows) > body.limit else None
    return SearchResponse(reads=reads, next_cursor=next_cursor)

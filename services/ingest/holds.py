"""Holds on reads (routes and logic): a supervisor keeps reads past retention for a case, or for a data subject's
written request to preserve possibly exculpatory data (Minn. Stat. 13.824 subd. 3(b)); internal endpoints give the
access service the retention figures of its reports."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import facts, retention
from services.ingest.deps import Ctx, Service
from services.ingest.retention_models import ACTIVE_HELD_READS, Hold, HoldRead, PurgeRun
from services.ingest.writer import READS
from shared.audit import client_ip
from shared.auth import AUDITOR, SUPERVISOR, Principal, require_roles
from shared.db import ReadSessionDep, SessionDep
from shared.errors import NotFound, Unprocessable
from shared.holds import HoldBook, HoldRelease, HoldSummary, HoldTerms, summary_fields
from shared.scoping import Scoped
from shared.service_callers import ACCESS_ONLY, HOTLIST_ONLY, check_caller
from shared.text import CleanInput

router = APIRouter(tags=["retention"])
Supervisor = Annotated[Principal, Depends(require_roles(SUPERVISOR))]
HoldReader = Annotated[Principal, Depends(require_roles(SUPERVISOR, AUDITOR))]


class HeldIn(CleanInput):
    read_ids: list[str] = Field(max_length=10_000)


class HeldOut(BaseModel):
    held: list[str]


async def held_among(engine: AsyncEngine, read_ids: list[str]) -> set[str]:
    """Those of `read_ids` that an active hold keeps: their hits must stay too (hotlist's purge asks)."""
    ids = []
    for raw in read_ids:
        with contextlib.suppress(ValueError):
            ids.append(uuid.UUID(raw))
    if not ids:
        return set()
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT DISTINCT read_id FROM ({ACTIVE_HELD_READS}) held WHERE read_id = ANY(:ids)"), {"ids": ids}
        )
        return {str(r[0]) for r in rows}


class HoldIn(HoldTerms):
    read_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class HoldOut(HoldSummary):
    release_reason: str | None
    reads: int


class HoldList(BaseModel):
    holds: list[HoldOut]


class PurgeRunOut(BaseModel):
    run_id: uuid.UUID
    started_at: datetime
    finished_at: datetime | None
    trigger: str
    actor: str
    status: str
    retention_days: int
    cutoff: datetime
    reads_destroyed: int
    objects_destroyed: int
    stream_events_destroyed: int
    partitions_dropped: int
    reads_kept_held: int
    objects_kept_held: int


class RetentionSummary(BaseModel):
    purges: list[PurgeRunOut]
    holds_placed: int
    holds_released: int
    holds_active: int
    reads_held: int
    check: dict[str, object]


HOLDS = HoldBook(service="ingest", held="read", hold=Hold, item=HoldRead, item_key="read_id", released_type="hold")


def _out(hold: Hold, reads: int) -> HoldOut:
    return HoldOut(**summary_fields(hold), release_reason=hold.release_reason, reads=reads)


@router.post("/v1/holds", status_code=201, summary="Keep these reads past retention for a case")
async def place_hold(
    body: HoldIn, request: Request, principal: Supervisor, session: SessionDep, scope: Scoped
) -> HoldOut:
    ids = list(dict.fromkeys(body.read_ids))
    # Only the caller's agency's reads: another agency's are as if they did not exist.
    stmt = select(READS.c.id, READS.c.captured_at, READS.c.image_key, READS.c.crop_key).where(READS.c.id.in_(ids))
    rows = (await session.execute(scope.where(stmt, READS.c.agency))).all()
    found = {r.id for r in rows}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"no such reads in your agency (already purged, or never stored): {missing[:20]}")
    items = [
        HoldRead(read_id=r.id, captured_at=r.captured_at, image_key=r.image_key, crop_key=r.crop_key) for r in rows
    ]
    hold = await HOLDS.place(session, request, principal, scope, body, ids, items)
    await session.execute(
        READS.update()
        .where(tuple_(READS.c.id, READS.c.captured_at).in_([(r.id, r.captured_at) for r in rows]))
        .values(classification=body.classification)
    )
    return _out(hold, len(rows))


@router.post("/v1/holds/{hold_id}/release", summary="Release a hold: its reads follow the normal clock again")
async def release_hold(
    hold_id: uuid.UUID, body: HoldRelease, request: Request, principal: Supervisor, session: SessionDep, scope: Scoped
) -> HoldOut:
    async def reclassify(hold: Hold) -> None:
        # Back to private, unless another active hold still classifies the read.
        await session.execute(
            text(
                "UPDATE ingest.reads r SET classification = coalesce(("
                "  SELECT h.classification FROM ingest.hold_reads hr JOIN ingest.holds h ON h.id = hr.hold_id"
                "  WHERE hr.read_id = r.id AND h.released_at IS NULL ORDER BY h.placed_at DESC LIMIT 1), 'private') "
                "FROM ingest.hold_reads released WHERE released.hold_id = :hold AND r.id = released.read_id "
                "AND r.captured_at = released.captured_at"
            ),
            {"hold": hold.id},
        )

    hold, n = await HOLDS.release(session, request, principal, scope, hold_id, body, then=reclassify)
    return _out(hold, n)


@router.get("/v1/holds", summary="Holds, newest first")
async def list_holds(
    request: Request,
    principal: HoldReader,
    session: SessionDep,
    scope: Scoped,
    case_number: str | None = None,
    active: bool | None = None,
    limit: int = Query(default=200, ge=1, le=1000),
) -> HoldList:
    holds, counts = await HOLDS.listed(session, scope, case_number=case_number, active=active, limit=limit)
    # A listing names cases and reasons: accessed data, audited like any other (13.824 subd. 7(b)).
    await scope.audit(
        session, service="ingest", action="holds.list", object_type="hold", object_ids=[str(h.id) for h in holds],
        source_ip=client_ip(request), record_count=len(holds), details={"case_number": case_number, "active": active},
    )  # fmt: skip
    return HoldList(holds=[_out(h, counts.get(h.id, 0)) for h in holds])


@router.get("/v1/internal/retention", summary="Purges, holds and the retention check over a period (access reports)")
async def retention_summary(
    principal: Service,
    ctx: Ctx,
    session: SessionDep,
    start: datetime = Query(description="period start, ISO 8601 with zone"),
    end: datetime = Query(description="period end, ISO 8601 with zone"),
    agency: str | None = Query(default=None, description="count only this agency's holds (ORI)"),
) -> RetentionSummary:
    check_caller(principal, ACCESS_ONLY)  # access's reports only: figures are not another service's
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise Unprocessable("start and end need a zone, and end must follow start")
    runs = (
        await session.execute(
            select(PurgeRun)
            .where(PurgeRun.started_at >= start, PurgeRun.started_at < end)  # type: ignore[arg-type]
            .order_by(PurgeRun.started_at)  # type: ignore[arg-type]
        )
    ).scalars()
    purges = [
        PurgeRunOut(
            run_id=r.id,
            started_at=r.started_at,
            finished_at=r.finished_at,
            trigger=r.trigger,
            actor=r.actor,
            status=r.status,
            retention_days=r.retention_days,
            cutoff=r.cutoff,
            reads_destroyed=r.reads_destroyed,
            objects_destroyed=r.objects_destroyed,
            stream_events_destroyed=r.stream_events_destroyed,
            partitions_dropped=r.partitions_dropped,
            reads_kept_held=r.reads_kept_held,
            objects_kept_held=r.objects_kept_held,
        )
        for r in runs
    ]
    q = await session.execute(
        text(
            "SELECT count(*) FILTER (WHERE placed_at >= :s AND placed_at < :e), "
            "count(*) FILTER (WHERE released_at >= :s AND released_at < :e), "
            "count(*) FILTER (WHERE released_at IS NULL) FROM ingest.holds "
            "WHERE CAST(:agency AS text) IS NULL OR coalesce(agency, '') = CAST(:agency AS text)"
        ),
        {"s": start, "e": end, "agency": agency},
    )
    placed, released, active = q.one()
    held = (
        await session.execute(
            text(
                f"SELECT count(*) FROM ingest.reads WHERE id IN ({retention._ACTIVE_HELD}) "
                "AND (CAST(:agency AS text) IS NULL OR coalesce(agency, '') = CAST(:agency AS text))"
            ),
            {"agency": agency},
        )
    ).scalar_one()  # the agency's own reads held
    check = await retention.check(ctx.engine, ctx.store, ctx.settings, agency=agency)
    return RetentionSummary(
        purges=purges,
        holds_placed=int(placed),
        holds_released=int(released),
        holds_active=int(active),
        reads_held=int(held),
        check=check,
    )


class UsageShift(BaseModel):
    shift_id: uuid.UUID
    unit: str
    agency: str | None
    badge: str
    cameras: list[str]
    started_at: datetime
    ended_at: datetime | None  # None: still open
    reads: int  # reads captured in the period during this shift


class UsageDay(BaseModel):
    unit: str
    day: str
    reads: int
    agency: str = ""
    distinct_plates: int = 0  # distinct within the day
    reads_no_plate: int = 0


class Usage(BaseModel):
    """Ingest's part of the log of use for [start, end): when readers collected data, and how many plates; counted
    from the daily facts (services/ingest/facts.py), so a purged period reads as it did before."""

    start: datetime
    end: datetime
    shifts: list[UsageShift]
    reads_by_unit_day: list[UsageDay]
    reads_total: int
    distinct_plates_by_day_total: int = 0  # the sum over days of each day's distinct plates
    reads_no_plate_total: int = 0
    classification: dict[str, int] = Field(default_factory=dict)
    # Suspensions of the agency's collection in force during the period (13.824 subd. 6(b)).
    suspensions: list[dict[str, Any]] = Field(default_factory=list)


@router.get(
    "/v1/internal/usage",
    response_model=Usage,
    summary="Shifts and reads per shift and per unit-day over a period (access reports)",
)
async def usage(
    principal: Service,
    session: ReadSessionDep,  # figures only: the standby's, when one is set
    start: datetime = Query(description="period start, ISO 8601 with zone"),
    end: datetime = Query(description="period end, ISO 8601 with zone"),
    agency: str = Query(description="the custodian agency (ORI) whose log of use this is; each report is one's"),
) -> JSONResponse:
    check_caller(principal, ACCESS_ONLY)  # access's reports only: figures are not another service's
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise Unprocessable("start and end need a zone, and end must follow start")
    p = {"s": start, "e": end, "agency": agency}
    per_shift: dict[str, int] = {}
    # Keyed by agency too: unit names are unique per agency only, so two agencies' "Car 1" never merge.
    per_day: dict[tuple[str, str, str], dict[str, Any]] = {}
    found = await facts.period(session, start, end, agency=agency)
    for f in found.rows:
        per_shift[f.shift_id] = per_shift.get(f.shift_id, 0) + f.reads
        d = per_day.get((f.agency, f.unit, f.day))
        if d is None:
            d = per_day[(f.agency, f.unit, f.day)] = {
                "unit": f.unit,
                "day": f.day,
                "agency": f.agency,
                "reads": 0,
                "distinct_plates": 0,
                "reads_no_plate": 0,
            }
        d["reads"] += f.reads
        d["distinct_plates"] += f.distinct_plates
        d["reads_no_plate"] += f.reads_no_plate
    shifts = (
        await session.execute(
            text(
                "SELECT id, unit, agency, badge, cameras, started_at, "
                "CASE WHEN ended_at IS NULL AND expires_at > now() THEN NULL ELSE coalesce(ended_at, expires_at) END "
                "FROM ingest.shifts WHERE started_at < :e AND coalesce(ended_at, expires_at) > :s "
                "AND coalesce(agency, '') = :agency ORDER BY unit, started_at"
            ),
            p,
        )
    ).all()
    suspended = (
        await session.execute(
            text(
                "SELECT order_reference, suspended_at, lifted_at FROM ingest.suspensions WHERE agency = :agency "
                "AND suspended_at < :e AND (lifted_at IS NULL OR lifted_at > :s) ORDER BY suspended_at"
            ),
            p,
        )
    ).all()
    # Answered as plain JSON, without building a model per row (the values come from PostgreSQL, and two years
    # are tens of thousands of rows); the shape is `Usage`.
    days = [per_day[k] for k in sorted(per_day)]
    body = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "shifts": [
            {
                "shift_id": str(r[0]),
                "unit": r[1],
                "agency": r[2],
                "badge": r[3],
                "cameras": list(r[4]),
                "started_at": r[5].isoformat(),
                "ended_at": r[6].isoformat() if r[6] else None,
                "reads": per_shift.get(str(r[0]), 0),
            }
            for r in shifts
        ],
        "reads_by_unit_day": days,
        "reads_total": sum(d["reads"] for d in days),
        "distinct_plates_by_day_total": sum(d["distinct_plates"] for d in days),
        "reads_no_plate_total": sum(d["reads_no_plate"] for d in days),
        "classification": found.classification,
        "suspensions": [
            {"order_reference": r[0], "suspended_at": r[1].isoformat(), "lifted_at": r[2].isoformat() if r[2] else None}
            for r in suspended
        ],
    }
    return JSONResponse(body)


@router.post(
    "/v1/internal/reads/held",
    tags=["internal"],
    summary="Which of these reads an active hold keeps (hotlist's purge keeps their hits)",
)
async def internal_held(body: HeldIn, principal: Service, ctx: Ctx) -> HeldOut:
    # Only hotlist's purge asks (it keeps held reads' hits): another service's token learns nothing of holds.
    check_caller(principal, HOTLIST_ONLY)
    return HeldOut(held=sorted(await held_among(ctx.engine, body.read_ids)))

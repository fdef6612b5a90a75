"""Requests from data subjects about their plate. Safe at Home participants (Minn. Stat. 13.824 subd. 3(c)): the
reads of their plate are destroyed on receipt of the request (rows, photos, hit events; hotlist destroys the hits
raised on them), but those a hold keeps (active criminal investigative data); later reads are destroyed at
collection (protected.py), from the moment the request is recorded. A plate under a hold or on a hot list needs a
second supervisor to confirm within `ingest_safe_at_home_confirm_days`: only what the hold keeps waits for them.
The request itself is private data: the plate lives only in ingest's own table, beside the reads it protects (no
report, audit entry or log carries it).

(Exculpatory-evidence requests, subd. 3(b), are holds of kind `exculpatory`: see holds.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.ingest.clients import CallFailed
from services.ingest.deps import Ctx
from services.ingest.protected import destroy_reads
from services.ingest.retention_models import ACTIVE_HELD_READS, ProtectedPlate
from shared import plates
from shared.audit import client_ip, record
from shared.auth import SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import Conflict, Forbidden, Unavailable, Unprocessable
from shared.scoping import Scoped
from shared.settings import Settings
from shared.storage import ObjectStore
from shared.text import CleanInput

router = APIRouter(tags=["retention"])
Supervisor = Annotated[Principal, Depends(require_roles(SUPERVISOR))]


class SafeAtHomeIn(CleanInput):
    plate: str = Field(min_length=1, max_length=12)
    request_reference: str = Field(min_length=1, max_length=64, description="the written request's reference")
    received_on: datetime


class SafeAtHomeOut(BaseModel):
    request_id: str
    # "protected" | "awaiting_confirmation" (protected already; a second supervisor confirms what a hold keeps)
    status: str
    reads_destroyed: int
    objects_destroyed: int
    hits_destroyed: int | None  # None: not destroyed yet, or this ingest does not call hotlist


async def destroy_protected(
    engine: AsyncEngine,
    store: ObjectStore,
    settings: Settings,
    request_id: uuid.UUID | None = None,
    audit: Callable[[AsyncSession, int, int], Awaitable[object]] | None = None,
) -> tuple[int, int]:
    """Destroy every read of a protected plate (ours or the car's own reading) that the recording agency holds,
    but held ones, with its objects, hit events and the camera agents' records of it; `request_id`: one request's
    plate only. `audit` writes the destruction's audit entry in the same transaction."""
    async with engine.begin() as conn:
        # Held reads stay: the statute excepts active criminal investigative data. Another agency's reads are not
        # the recording agency's to destroy.
        ids = [
            r[0]
            for r in await conn.execute(
                text(
                    "SELECT r.id FROM ingest.reads r JOIN ingest.protected_plates p "
                    "ON (r.plate = p.plate OR r.car_plate = p.plate) AND r.agency = p.agency "
                    "WHERE (CAST(:id AS uuid) IS NULL OR p.id = :id) "
                    f"AND r.id NOT IN ({ACTIVE_HELD_READS})"
                ),
                {"id": request_id},
            )
        ]
        keys = await destroy_reads(conn, ids)
        # Quarantined agent posts naming the plate (parsed), or carrying it in a body that did not parse: the
        # recording agency's agents' posts, and posts no agent is known for (no one else's to keep).
        await conn.execute(
            text(
                "DELETE FROM ingest.agent_quarantine q USING ingest.protected_plates p "
                "WHERE (CAST(:id AS uuid) IS NULL OR p.id = :id) "
                "AND (q.agent_id IS NULL OR q.agent_id IN (SELECT id FROM ingest.agents WHERE agency = p.agency)) "
                "AND (p.plate = ANY(q.plates) OR position(convert_to(p.plate, 'UTF8') IN q.body) > 0)"
            ),
            {"id": request_id},
        )
        if audit is not None:
            async with AsyncSession(bind=conn) as session:
                await audit(session, len(ids), len(keys))
    if keys:
        await store.delete_keys(keys)
    return len(ids), len(keys)


async def _needs_second_look(ctx: Ctx, agency: str, plate: str) -> list[str]:
    """Why a second supervisor must confirm: the plate is under a hold of the agency, or on a hot list."""
    why = []
    async with ctx.engine.connect() as conn:
        held = (
            await conn.execute(
                text(
                    "SELECT 1 FROM ingest.reads r WHERE (r.plate = :p OR r.car_plate = :p) AND r.agency = :a "
                    f"AND r.id IN ({ACTIVE_HELD_READS}) LIMIT 1"
                ),
                {"p": plate, "a": agency},
            )
        ).first()
    if held:
        why.append("under a hold")
    if ctx.hotlist is not None:
        try:
            if await ctx.hotlist.plate_listed(plate, agency):
                why.append("on a hot list")
        except CallFailed:
            # Unknown is treated as listed: the request is recorded (and audited) and a second supervisor confirms.
            why.append("hot list not reachable to check")
    return why


async def _finish(
    ctx: Ctx, principal: Principal, request: Request, entry: ProtectedPlate, *, hotlist_down_ok: bool = False
) -> SafeAtHomeOut:
    """Destroy the protected plate's hits (hotlist) and reads (here), each with its audit entry. `hotlist_down_ok`:
    a request already waiting for a second supervisor because hotlist did not answer; its reads go regardless."""
    hits: int | None = None
    if ctx.hotlist is not None:
        try:
            hits = int((await ctx.hotlist.forget_plate(entry.plate, entry.agency))["hits_destroyed"])
        except (CallFailed, KeyError, TypeError, ValueError) as exc:
            if not hotlist_down_ok:
                # Recorded and protected already: a retry of the same request finishes the job.
                raise Unavailable(f"hotlist did not destroy the plate's hits ({exc}): retry this request") from exc

    async def audit(session: AsyncSession, reads: int, objects: int) -> None:
        await record(
            session,
            service="ingest",
            action="subject_request.safe_at_home.destroyed",
            principal=principal,
            object_type="subject_request",
            object_ids=[str(entry.id)],
            source_ip=client_ip(request),
            record_count=reads,
            details={"reads_destroyed": reads, "objects_destroyed": objects, "hits_destroyed": hits},
        )

    reads, objects = await destroy_protected(ctx.engine, ctx.store, ctx.settings, entry.id, audit)
    return SafeAtHomeOut(
        request_id=str(entry.id), status="awaiting_confirmation" if entry.pending else "protected",
        reads_destroyed=reads, objects_destroyed=objects, hits_destroyed=hits,
    )  # fmt: skip


@router.post(
    "/v1/subject-requests/safe-at-home",
    status_code=201,
    summary="A Safe at Home participant's request: destroy the agency's unheld reads of their plate now and from now "
    "on (a plate on a hot list or under a hold: 202, protected already; a second supervisor confirms what is held)",
    responses={202: {"model": SafeAtHomeOut, "description": "protected; a second supervisor must confirm"}},
)
async def safe_at_home(
    body: SafeAtHomeIn, request: Request, principal: Supervisor, scope: Scoped, ctx: Ctx, session: SessionDep
) -> JSONResponse:
    plate = plates.normalize(body.plate)
    if not plate:
        raise Unprocessable("plate: no letters or digits")
    if body.received_on.tzinfo is None:
        raise Unprocessable("received_on needs a time zone")
    existing = (
        await session.execute(
            select(ProtectedPlate).where(ProtectedPlate.plate == plate, ProtectedPlate.agency == scope.agency)  # type: ignore[arg-type]
        )
    ).scalar_one_or_none()
    if existing is not None and existing.pending:
        raise Conflict(
            f"request {existing.id} waits for a second supervisor: "
            f"POST /v1/subject-requests/safe-at-home/{existing.id}/confirm"
        )
    if existing is None:
        why = await _needs_second_look(ctx, scope.agency, plate)
        entry = ProtectedPlate(
            agency=scope.agency,
            plate=plate,
            request_reference=body.request_reference,
            received_on=body.received_on,
            recorded_by=principal.subject,
            recorded_at=datetime.now(UTC),
            pending=bool(why),
        )
        session.add(entry)
        await session.flush()
        # The audit entry commits with the request (never the plate: the reference names it).
        await scope.audit(
            session,
            service="ingest",
            action="subject_request.safe_at_home",
            object_type="subject_request",
            object_ids=[str(entry.id)],
            source_ip=client_ip(request),
            details={"request_reference": body.request_reference, "awaiting_confirmation": why},
        )
        await session.commit()  # the plate is protected before its reads go, so a read arriving meanwhile goes too
        if why:
            # Protected on receipt: unheld reads go now, whatever the second supervisor later decides about the
            # held ones (which stay in any case: active criminal investigative data).
            out = await _finish(ctx, principal, request, entry, hotlist_down_ok=True)
            return JSONResponse(out.model_dump(), status_code=202)
    else:
        entry = existing
    out = await _finish(ctx, principal, request, entry)
    return JSONResponse(out.model_dump(), status_code=201)


@router.post(
    "/v1/subject-requests/safe-at-home/{request_id}/confirm",
    summary="A second supervisor confirms a Safe at Home request for a plate on a hot list or under a hold",
)
async def confirm_safe_at_home(
    request_id: uuid.UUID, request: Request, principal: Supervisor, scope: Scoped, ctx: Ctx, session: SessionDep
) -> SafeAtHomeOut:
    entry = scope.check(await session.get(ProtectedPlate, request_id, with_for_update=True), "Safe at Home request")
    if entry.pending:
        if entry.recorded_by == principal.subject:
            raise Forbidden("two-person rule: another supervisor than the one who recorded it confirms")
        entry.pending, entry.confirmed_by = False, principal.subject
        await session.flush()
        await scope.audit(
            session,
            service="ingest",
            action="subject_request.safe_at_home.confirm",
            object_type="subject_request",
            object_ids=[str(entry.id)],
            source_ip=client_ip(request),
            details={"request_reference": entry.request_reference, "recorded_by": entry.recorded_by},
        )
        await session.commit()
    return await _finish(ctx, principal, request, entry)


class PendingSafeAtHome(BaseModel):
    request_id: str
    request_reference: str  # never the plate: private data
    received_on: datetime
    recorded_by: str
    recorded_at: datetime
    confirm_by: datetime  # recorded_at + ingest_safe_at_home_confirm_days
    overdue: bool


_OVERDUE_SQL = (
    "SELECT count(*) FROM ingest.protected_plates WHERE pending AND recorded_at < now() - make_interval(days => :d)"
)


@router.get(
    "/v1/subject-requests/safe-at-home/pending",
    summary="The caller's agency's Safe at Home requests waiting for a second supervisor, oldest first, with the "
    "date each must be confirmed by (supervisors; audited)",
)
async def pending_safe_at_home(
    request: Request, principal: Supervisor, scope: Scoped, ctx: Ctx, session: SessionDep
) -> list[PendingSafeAtHome]:
    days = timedelta(days=ctx.settings.ingest_safe_at_home_confirm_days)
    rows = (
        await session.execute(
            scope.where(select(ProtectedPlate), ProtectedPlate.agency)
            .where(ProtectedPlate.pending)  # type: ignore[arg-type]
            .order_by(ProtectedPlate.recorded_at)  # type: ignore[arg-type]
        )
    ).scalars()
    now = datetime.now(UTC)
    out = [
        PendingSafeAtHome(
            request_id=str(r.id),
            request_reference=r.request_reference,
            received_on=r.received_on,
            recorded_by=r.recorded_by,
            recorded_at=r.recorded_at,
            confirm_by=r.recorded_at + days,
            overdue=r.recorded_at + days < now,
        )  # fmt: skip
        for r in rows
    ]
    await scope.audit(
        session,
        service="ingest",
        action="subject_request.safe_at_home.pending",
        object_type="subject_request",
        object_ids=[o.request_id for o in out],
        source_ip=client_ip(request),
        record_count=len(out),
    )
    await session.commit()
    return out


async def overdue_count(engine: AsyncEngine, days: int) -> int:
    """Safe at Home requests of every agency waiting for their second supervisor longer than `days`."""
    async with engine.connect() as conn:
        return int((await conn.execute(text(_OVERDUE_SQL), {"d": days})).scalar_one())


async def safe_at_home_overdue(app: Any) -> str | None:
    """/readyz: a warning while any Safe at Home request waits past its deadline for the second supervisor."""
    days: int = app.state.settings.ingest_safe_at_home_confirm_days
    try:
        n = await overdue_count(app.state.engine, days)
    except Exception:  # noqa: BLE001 - PostgreSQL down or not migrated: its own check reports that
        return None
    if n:
        return (
            f"{n} Safe at Home request(s) wait more than {days} days for a second supervisor: "
            "GET /v1/subject-requests/safe-at-home/pending"
        )
    return None

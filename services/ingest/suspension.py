"""The switch that suspends an agency's collection on the commissioner's order (Minn. Stat. 13.824 subd. 6(b)).
While suspended: the agency's open shifts end, no shift starts, a car's read and a camera agent's post are refused
with 403 saying why; `/readyz` warns. Each suspension and lift is audited. An admin of the agency records the order
(no one records it for another agency)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.agents.routes import Intake
from services.ingest.deps import Ctx
from services.ingest.models import Shift
from services.ingest.suspension_models import Suspension, in_force
from shared.audit import client_ip
from shared.auth import ADMIN, AUDITOR, SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import Conflict, NotFound
from shared.scoping import Scoped
from shared.text import CleanInput

router = APIRouter(tags=["suspension"])
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(ADMIN, SUPERVISOR, AUDITOR))]


class SuspendIn(CleanInput):
    order_reference: str = Field(min_length=1, max_length=200, description="the commissioner's order")
    reason: str = Field(min_length=3, max_length=4000)


class LiftIn(CleanInput):
    reason: str = Field(min_length=3, max_length=4000, description="e.g. the order lifting the suspension")


class SuspensionOut(BaseModel):
    suspension_id: str
    agency: str
    order_reference: str
    reason: str
    suspended_by: str
    suspended_at: datetime
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason: str | None
    shifts_ended: int | None = None


def _out(s: Suspension, shifts_ended: int | None = None) -> SuspensionOut:
    return SuspensionOut(
        suspension_id=str(s.id), agency=s.agency, order_reference=s.order_reference, reason=s.reason,
        suspended_by=s.suspended_by, suspended_at=s.suspended_at, lifted_by=s.lifted_by, lifted_at=s.lifted_at,
        lift_reason=s.lift_reason, shifts_ended=shifts_ended,
    )  # fmt: skip


def _own(principal: Principal, agency: str) -> None:
    if (principal.agency or "") != agency:
        raise NotFound(f"no agency {agency} administered by you")


async def start_suspension(
    session: AsyncSession, agency: str, order_reference: str, reason: str, by: str
) -> tuple[Suspension, list[str]]:
    """Record the order and end the agency's open shifts, in the caller's transaction (the API and `alpr agencies
    suspend` both call it; each audits in the same transaction). Returns the suspension and the units stopped."""
    if await _active(session, agency, lock=False) is not None:
        raise Conflict(f"agency {agency}'s collection is already suspended")
    now = datetime.now(UTC)
    s = Suspension(agency=agency, order_reference=order_reference, reason=reason, suspended_by=by, suspended_at=now)
    session.add(s)
    ended = (
        await session.execute(
            update(Shift)
            .where(Shift.agency.is_not_distinct_from(agency), Shift.ended_at.is_(None))  # type: ignore[union-attr]
            .values(ended_at=now, end_reason="suspended")
            .returning(Shift.unit)
        )
    ).all()
    await session.flush()
    return s, [u for (u,) in ended]


async def lift_suspension(session: AsyncSession, agency: str, reason: str, by: str) -> Suspension:
    """Lift the suspension in force, in the caller's transaction (the API and `alpr agencies resume`)."""
    s = await _active(session, agency, lock=True)
    if s is None:
        raise Conflict(f"agency {agency}'s collection is not suspended")
    s.lifted_at, s.lifted_by, s.lift_reason = datetime.now(UTC), by, reason
    await session.flush()
    return s


async def _active(session: AsyncSession, agency: str, *, lock: bool) -> Suspension | None:
    q = select(Suspension).where(Suspension.agency == agency, Suspension.lifted_at.is_(None))  # type: ignore[arg-type,union-attr]
    return (await session.execute(q.with_for_update() if lock else q)).scalar_one_or_none()


@router.post(
    "/v1/agencies/{agency}/suspension",
    status_code=201,
    summary="Suspend the agency's collection on the commissioner's order: open shifts end; reads and agents' posts "
    "are refused (403) until lifted (admins of the agency; audited)",
)
async def suspend(
    agency: str, body: SuspendIn, request: Request, principal: Admin, scope: Scoped, ctx: Ctx, intake: Intake,
    session: SessionDep,
) -> SuspensionOut:  # fmt: skip
    _own(principal, agency)
    s, ended = await start_suspension(session, agency, body.order_reference, body.reason, principal.subject)
    await scope.audit(
        session, service="ingest", action="agency.suspend", object_type="agency", object_ids=[agency],
        source_ip=client_ip(request), details={"order_reference": body.order_reference, "shifts_ended": len(ended)},
    )  # fmt: skip
    await session.commit()  # before the registry and the shift cache are read again
    for unit in ended:
        ctx.forget_unit(unit, agency)
    await intake.registry.invalidate()
    return _out(s, len(ended))


@router.post(
    "/v1/agencies/{agency}/suspension/lift",
    summary="Lift the agency's suspension: collection may resume (admins of the agency; audited)",
)
async def lift(
    agency: str, body: LiftIn, request: Request, principal: Admin, scope: Scoped, intake: Intake, session: SessionDep
) -> SuspensionOut:
    _own(principal, agency)
    s = await lift_suspension(session, agency, body.reason, principal.subject)
    await scope.audit(
        session, service="ingest", action="agency.suspension_lift", object_type="agency", object_ids=[agency],
        source_ip=client_ip(request), details={"order_reference": s.order_reference, "reason": body.reason},
    )  # fmt: skip
    await session.commit()
    await intake.registry.invalidate()
    return _out(s)


@router.get("/v1/agencies/{agency}/suspensions", summary="The agency's suspensions, newest first (audited)")
async def suspensions(
    agency: str, request: Request, principal: Reader, scope: Scoped, session: SessionDep
) -> list[SuspensionOut]:
    _own(principal, agency)
    rows = (
        await session.execute(
            select(Suspension).where(Suspension.agency == agency).order_by(Suspension.suspended_at.desc())  # type: ignore[arg-type,attr-defined]
        )
    ).scalars()
    out = [_out(s) for s in rows]
    await scope.audit(
        session, service="ingest", action="agency.suspensions", object_type="agency", object_ids=[agency],
        source_ip=client_ip(request), record_count=len(out),
    )  # fmt: skip
    return out


async def collection_suspended(app: Any) -> str | None:
    """/readyz: a warning while any agency's collection is suspended."""
    try:
        found = await in_force(app.state.engine)
    except Exception:  # noqa: BLE001 - PostgreSQL down or not migrated: its own check says so
        return None
    if not found:
        return None
    return "collection suspended (13.824 subd. 6(b)) for " + ", ".join(
        f"{a or '(no agency)'} since {since.date().isoformat()} (order {order})" for a, (order, since) in found.items()
    )

"""The register of readers in use (Minn. Stat. 13.824 subd. 8): units that had a shift, camera agents that collected,
fixed reader locations with their dates; and the admin endpoint that moves a fixed reader, keeping its history.
Access builds the notices to the BCA from the internal endpoint; ingest only holds the facts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text

from services.ingest import facts
from services.ingest.agents import admin
from services.ingest.agents.models import AgentLocation
from services.ingest.deps import Service
from shared.audit import client_ip, record
from shared.auth import ADMIN, Principal, require_roles
from shared.bounds import PastDate
from shared.db import SessionDep
from shared.errors import Unprocessable
from shared.service_callers import ACCESS_ONLY, check_caller
from shared.text import CleanInput

router = APIRouter(tags=["readers"])
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]


class LocationMove(CleanInput):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    placed_on: PastDate = Field(description="when the reader was put in place at the new location (not ahead)")
    description: str | None = Field(default=None, max_length=500)


class ReaderLocation(BaseModel):
    agent_id: uuid.UUID
    name: str
    agency: str
    lat: float
    lon: float
    placed_on: date
    until: date | None  # the next location's date; None: where it stands now
    description: str | None
    change: bool  # False: the reader's first location (its first use is the notice); True: a move


class ReaderIn(CleanInput):
    reader_id: str  # "unit:<agency>:<unit>" ("unit:<unit>" without an agency) or "agent:<uuid>"
    kind: str  # "unit" | "fixed" | "mounted"
    name: str
    agency: str | None
    unit: str | None
    first_use: datetime | None  # None: registered, never collected yet
    disabled_at: datetime | None = None


class ActiveSpan(BaseModel):
    start: datetime
    end: datetime


class FixedActivity(BaseModel):
    agent_id: uuid.UUID
    intervals: list[ActiveSpan]
    reads: int


class Register(BaseModel):
    readers: list[ReaderIn]
    fixed_locations: list[ReaderLocation]
    fixed_activity: list[FixedActivity]  # only when a period is asked for


async def locations(session: SessionDep, agency: str | None = None) -> list[ReaderLocation]:
    agents = (
        await session.execute(
            text(
                "SELECT id, name, agency, lat, lon, placed_on, description FROM ingest.agents WHERE kind = 'fixed' "
                "AND (CAST(:agency AS text) IS NULL OR agency = :agency) ORDER BY agency, name"
            ),
            {"agency": agency},
        )
    ).all()
    history: dict[uuid.UUID, list[AgentLocation]] = {}
    rows = await session.execute(
        select(AgentLocation).order_by(AgentLocation.agent_id, AgentLocation.placed_on, AgentLocation.id)  # type: ignore[arg-type]
    )
    for loc in rows.scalars():
        history.setdefault(loc.agent_id, []).append(loc)
    out: list[ReaderLocation] = []
    for a in agents:
        spots = [(h.lat, h.lon, h.placed_on, h.description) for h in history.get(a.id, [])]
        if not spots and a.lat is not None and a.lon is not None and a.placed_on is not None:
            spots = [(a.lat, a.lon, a.placed_on, a.description)]
        for i, (lat, lon, placed_on, desc) in enumerate(spots):
            out.append(
                ReaderLocation(
                    agent_id=a.id,
                    name=a.name,
                    agency=a.agency,
                    lat=lat,
                    lon=lon,
                    placed_on=placed_on,
                    until=spots[i + 1][2] if i + 1 < len(spots) else None,
                    description=desc,
                    change=i > 0,
                )
            )
    return out


@router.post(
    "/v1/agents/{agent_id}/location",
    summary="Move a fixed reader: its new location from a date; the old one stays in the register (BCA notice)",
)
async def move_reader(
    agent_id: uuid.UUID, body: LocationMove, request: Request, principal: Admin, session: SessionDep
) -> list[ReaderLocation]:
    agent = await admin.get_agent(session, agent_id, principal.agency)
    if agent.kind != "fixed":
        raise Unprocessable("only a fixed reader has a location to move (a mounted one goes with its unit)")
    if agent.placed_on is not None and body.placed_on <= agent.placed_on:
        raise Unprocessable(f"placed_on must follow the current location's date ({agent.placed_on.isoformat()})")
    now = datetime.now(UTC)
    has_history = (
        await session.execute(select(AgentLocation.id).where(AgentLocation.agent_id == agent.id).limit(1))  # type: ignore[arg-type]
    ).first()
    if not has_history and agent.lat is not None and agent.lon is not None and agent.placed_on is not None:
        # The first move keeps where the reader stood until now.
        session.add(
            AgentLocation(
                agent_id=agent.id,
                lat=agent.lat,
                lon=agent.lon,
                placed_on=agent.placed_on,
                description=agent.description,
                recorded_by="registration",
                recorded_at=agent.created_at,
            )
        )
    session.add(
        AgentLocation(
            agent_id=agent.id,
            lat=body.lat,
            lon=body.lon,
            placed_on=body.placed_on,
            description=body.description,
            recorded_by=principal.subject,
            recorded_at=now,
        )
    )
    agent.lat, agent.lon, agent.placed_on = body.lat, body.lon, body.placed_on
    if body.description is not None:
        agent.description = body.description
    session.add(agent)
    await session.flush()
    await record(
        session,
        service="ingest",
        action="agent.move",
        principal=principal,
        object_type="agent",
        object_ids=[str(agent.id)],
        source_ip=client_ip(request),
        details={"lat": body.lat, "lon": body.lon, "placed_on": body.placed_on.isoformat()},
    )
    return [loc for loc in await locations(session) if loc.agent_id == agent.id]


@router.get(
    "/v1/internal/readers",
    tags=["internal"],
    summary="The register of readers in use and of fixed locations; fixed readers' activity over a period (access)",
)
async def register(
    principal: Service,
    session: SessionDep,
    start: datetime | None = Query(default=None, description="period start for fixed_activity, ISO 8601 with zone"),
    end: datetime | None = Query(default=None, description="period end for fixed_activity, ISO 8601 with zone"),
) -> Register:
    check_caller(principal, ACCESS_ONLY)  # access's reports only: figures are not another service's
    if (start is None) != (end is None):
        raise Unprocessable("give both start and end, or neither")
    if start is not None and end is not None and (start.tzinfo is None or end.tzinfo is None or end <= start):
        raise Unprocessable("start and end need a zone, and end must follow start")
    units = (
        await session.execute(
            text(
                # Per agency and unit: two agencies' CAR-1 are two readers, each with its own first use.
                "SELECT DISTINCT ON (agency, unit) unit, agency, min(started_at) OVER (PARTITION BY agency, unit) "
                "FROM ingest.shifts ORDER BY agency, unit, started_at DESC"
            )
        )
    ).all()
    agents = (
        await session.execute(
            text(
                "SELECT a.id, a.name, a.agency, a.kind, a.unit, a.disabled_at, "
                "(SELECT min(started_at) FROM ingest.agent_activity x WHERE x.agent_id = a.id) "
                "FROM ingest.agents a ORDER BY a.agency, a.name"
            )
        )
    ).all()
    readers = [
        ReaderIn(
            reader_id=f"unit:{ag}:{u}" if ag else f"unit:{u}", kind="unit", name=u, agency=ag, unit=u, first_use=first
        )
        for u, ag, first in units
    ] + [
        ReaderIn(
            reader_id=f"agent:{r[0]}",
            kind="fixed" if r[3] == "fixed" else "mounted",
            name=r[1],
            agency=r[2],
            unit=r[4],
            first_use=r[6],
            disabled_at=r[5],
        )
        for r in agents
    ]
    activity: list[FixedActivity] = []
    if start is not None and end is not None:
        spans = (
            await session.execute(
                text(
                    "SELECT x.agent_id, greatest(x.started_at, :s), least(x.ended_at, :e) FROM ingest.agent_activity x "
                    "JOIN ingest.agents a ON a.id = x.agent_id WHERE a.kind = 'fixed' "
                    "AND x.ended_at >= :s AND x.started_at < :e ORDER BY x.agent_id, x.started_at"
                ),
                {"s": start, "e": end},
            )
        ).all()
        # From the daily facts: a fixed reader's reads are still counted once the purge has destroyed them.
        fixed = {
            str(r[0]) for r in (await session.execute(text("SELECT id FROM ingest.agents WHERE kind = 'fixed'"))).all()
        }
        counts: dict[uuid.UUID, int] = {}
        for f in (await facts.period(session, start, end, agents_only=True)).rows:
            agent = f.reader.removeprefix("agent:")
            if f.reader.startswith("agent:") and agent in fixed:
                counts[uuid.UUID(agent)] = counts.get(uuid.UUID(agent), 0) + f.reads
        by_agent: dict[uuid.UUID, list[ActiveSpan]] = {}
        for agent_id, s, e in spans:
            by_agent.setdefault(agent_id, []).append(ActiveSpan(start=s, end=e))
        activity = [
            FixedActivity(agent_id=a, intervals=by_agent.get(a, []), reads=int(counts.get(a, 0)))
            for a in sorted(set(by_agent) | set(counts), key=str)
        ]
    return Register(readers=readers, fixed_locations=await locations(session), fixed_activity=activity)

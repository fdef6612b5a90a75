"""Agent registry administration (the admin API and `alpr agents` share it): create, list, rotate, disable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.ingest.agents.models import Agent
from services.ingest.agents.registry import hash_token, new_token
from services.ingest.agents.schemas import AgentCreate, AgentOut, AgentWithToken
from shared.errors import Conflict, NotFound, Unprocessable

UPLOAD_PATH = "/v1/agents/openalpr/"


def _now() -> datetime:
    return datetime.now(UTC)


async def dropped_fields(session: AsyncSession, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    rows = await session.execute(
        text("SELECT agent_id, field, count FROM ingest.agent_field_drops WHERE agent_id = ANY(:ids)"),
        {"ids": agent_ids},
    )
    out: dict[uuid.UUID, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r.agent_id, {})[r.field] = int(r.count)
    return out


def agent_out(agent: Agent, dropped: dict[str, int] | None = None) -> AgentOut:
    return AgentOut(
        agent_id=agent.id,
        name=agent.name,
        agency=agent.agency,
        kind=agent.kind,
        unit=agent.unit,
        lat=agent.lat,
        lon=agent.lon,
        placed_on=agent.placed_on,
        description=agent.description,
        created_at=agent.created_at,
        token_rotated_at=agent.token_rotated_at,
        disabled_at=agent.disabled_at,
        dropped_fields=dropped or {},
    )


def with_token(agent: Agent, token: str) -> AgentWithToken:
    return AgentWithToken(**agent_out(agent).model_dump(), token=token, upload_path=UPLOAD_PATH + token)


async def create_agent(session: AsyncSession, body: AgentCreate, default_agency: str | None) -> AgentWithToken:
    agency = body.agency or default_agency
    if not agency:
        raise Unprocessable("agency: required (your token names none)")
    token = new_token()
    now = _now()
    agent = Agent(
        name=body.name,
        agency=agency,
        kind=body.kind,
        unit=body.unit,
        lat=body.lat,
        lon=body.lon,
        placed_on=body.placed_on,
        description=body.description,
        token_sha256=hash_token(token),
        token_rotated_at=now,
        created_at=now,
    )
    session.add(agent)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"agency {agency} already has an agent named {body.name!r}") from None
    return with_token(agent, token)


async def get_agent(session: AsyncSession, agent_id: uuid.UUID, agency: str | None) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or (agency is not None and agent.agency != agency):
        raise NotFound("no such agent")
    return agent


async def find_agent(session: AsyncSession, ref: str) -> Agent:
    """By id, or by name when it is unique (the CLI)."""
    try:
        found = await session.get(Agent, uuid.UUID(ref))
    except ValueError:
        found = None
    if found is not None:
        return found
    rows = list((await session.execute(select(Agent).where(Agent.name == ref))).scalars())  # type: ignore[arg-type]
    if len(rows) != 1:
        raise NotFound(f"no single agent named {ref!r}" if rows else f"no agent {ref!r}")
    return rows[0]


async def list_agents(session: AsyncSession, agency: str | None) -> list[AgentOut]:
    stmt = select(Agent).order_by(Agent.agency, Agent.name)  # type: ignore[arg-type]
    if agency is not None:
        stmt = stmt.where(Agent.agency == agency)  # type: ignore[arg-type]
    agents = list((await session.execute(stmt)).scalars())
    dropped = await dropped_fields(session, [a.id for a in agents])
    return [agent_out(a, dropped.get(a.id)) for a in agents]


async def rotate(session: AsyncSession, agent: Agent) -> AgentWithToken:
    token = new_token()
    agent.token_sha256 = hash_token(token)
    agent.token_rotated_at = _now()
    session.add(agent)
    await session.flush()
    return with_token(agent, token)


async def set_disabled(session: AsyncSession, agent: Agent, disabled: bool) -> Agent:
    agent.disabled_at = (agent.disabled_at or _now()) if disabled else None
    session.add(agent)
    await session.flush()
    return agent

"""Routes of the camera-agent intake: the agents' POST endpoint (token in the URL) and the registry admin API."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.ingest.agents import admin
from services.ingest.agents.intake import AgentIntake
from services.ingest.agents.parse import token_in_custom_data
from services.ingest.agents.registry import AgentInfo
from services.ingest.agents.schemas import (
    ActiveInterval,
    AgentAccepted,
    AgentActivityOut,
    AgentCreate,
    AgentList,
    AgentOut,
    AgentWithToken,
    QuarantinedPost,
    QuarantineList,
    SpoolStatus,
)
from services.ingest.agents.spool import spool_stats
from shared.audit import client_ip, record
from shared.auth import ADMIN, AUDITOR, SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.limits import read_body
from shared.scoping import Scoped

router = APIRouter(tags=["agents"])

Admin = Annotated[Principal, Depends(require_roles(ADMIN))]
Viewer = Annotated[Principal, Depends(require_roles(ADMIN, SUPERVISOR, AUDITOR))]


def get_intake(request: Request) -> AgentIntake:
    intake: AgentIntake | None = getattr(request.app.state, "agents", None)
    if intake is None:
        raise Unavailable("ingest is starting")
    return intake


Intake = Annotated[AgentIntake, Depends(get_intake)]


# ---- what the agents post -----------------------------------------------------------------------------------


async def accept(intake: AgentIntake, token: str | None, request: Request) -> uuid.UUID:
    """One agent post, spooled: its record id once it is on disk. The route below and the fast path
    (`fastpath.agent_post_beside_the_router`, which answers these posts in ingest) both come here."""
    agent = None
    if token:
        # The token first: a wrong one is refused before a byte of the body is read (a flood costs nothing).
        agent = await _known(intake, token)
    # 413 as soon as the stream passes the limit, never buffered whole.
    body = await read_body(request, intake.settings.ingest_agent_max_body_bytes)
    if agent is None:
        token = token_in_custom_data(body)
        if not token:
            raise Unauthorized("no agent token: post to /v1/agents/openalpr/<token>")
        agent = await _known(intake, token)
    try:
        return await intake.writer.append(agent.id, body)
    except OSError:
        raise Unavailable("the spool could not be written") from None


async def _accept(request: Request, token: str | None) -> JSONResponse:
    record_id = await accept(get_intake(request), token, request)
    return JSONResponse({"accepted": True, "id": str(record_id)})


async def _known(intake: AgentIntake, token: str) -> AgentInfo:
    agent = await intake.registry.lookup(token)
    if agent is None:
        raise Unauthorized("unknown agent token")
    if agent.disabled:
        raise Forbidden("this agent is disabled")
    if agent.suspended:
        raise Forbidden(
            f"collection by agency {agent.agency} is suspended (Minn. Stat. 13.824 subd. 6(b)): posts are refused "
            "until the suspension is lifted"
        )
    return agent


_AGENT_POST = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "description": "what the agent sends"}}},
    }
}


@router.post(
    "/v1/agents/openalpr/{token}",
    response_model=AgentAccepted,
    summary="OpenALPR / Rekor agent upload (token in the path): durable on disk before the answer",
    openapi_extra=_AGENT_POST,
)
async def agent_post(token: str, request: Request) -> JSONResponse:
    return await _accept(request, token)


@router.post(
    "/v1/agents/openalpr",
    response_model=AgentAccepted,
    summary="OpenALPR / Rekor agent upload (token in `?token=` or in `custom_data`)",
    openapi_extra=_AGENT_POST,
)
async def agent_post_query(request: Request, token: str | None = Query(default=None)) -> JSONResponse:
    return await _accept(request, token)


# ---- the registry -------------------------------------------------------------------------------------------


async def _audit(session: SessionDep, principal: Principal, request: Request, action: str, agent_id: uuid.UUID) -> None:
    await record(
        session,
        service="ingest",
        action=action,
        principal=principal,
        object_type="agent",
        object_ids=[str(agent_id)],
        source_ip=client_ip(request),
    )


@router.post("/v1/agents", status_code=201, summary="Register an agent; its token is shown once")
async def create_agent(
    body: AgentCreate, request: Request, principal: Admin, session: SessionDep, intake: Intake
) -> AgentWithToken:
    if principal.agency and body.agency and body.agency != principal.agency:
        raise Forbidden("you may register agents of your own agency only")
    created = await admin.create_agent(session, body, principal.agency)
    await _audit(session, principal, request, "agent.create", created.agent_id)
    await session.commit()
    # In the snapshot every ingest process reads before the answer: the token works at once, PostgreSQL or not.
    await intake.registry.note(session)
    return created


@router.get("/v1/agents", summary="Registered agents, with the disallowed fields dropped from their posts")
async def list_agents(principal: Viewer, session: SessionDep) -> AgentList:
    return AgentList(agents=await admin.list_agents(session, principal.agency))


# What a quarantined post keeps in the listing: its shape and the fields that say what went wrong, never a plate, a
# position or a picture (those open only under a grant, 13.824 subd. 7(a)).
_SHOWN = frozenset(
    {"data_type", "version", "epoch_time", "epoch_start", "epoch_end", "camera_id", "agent_type", "uuid", "best_uuid",
     "is_preview", "processing_time_ms", "frame_start", "frame_end", "confidence", "best_confidence"}
)  # fmt: skip


def _redacted(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    if value is None or isinstance(value, bool) or key in _SHOWN:
        return value
    return "[redacted]"


def redact(body: bytes) -> str:
    """The post with plates, positions and pictures redacted; a body that is not JSON keeps its punctuation only
    (where it broke), every letter and digit masked."""
    text_ = body.decode("utf-8", "replace")
    try:
        return json.dumps(_redacted(json.loads(text_)))
    except ValueError:
        return re.sub(r"[^\W_]", "#", text_)


@router.get("/v1/agents/quarantine", summary="Posts that could not become reads, with the reason, redacted")
async def quarantine(
    request: Request,
    principal: Admin,
    scope: Scoped,
    session: SessionDep,
    reason: str = Query(min_length=10, max_length=500, description="why the admin reads these raw posts (audited)"),
    agent_id: uuid.UUID | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> QuarantineList:
    # Raw bodies carry plates, positions and crops: the agency's own agents' only, with a reason, audited.
    rows = (
        await session.execute(
            text(
                "SELECT q.* FROM ingest.agent_quarantine q JOIN ingest.agents a ON a.id = q.agent_id "
                "WHERE (CAST(:agent AS uuid) IS NULL OR q.agent_id = :agent) "
                "AND coalesce(a.agency, '') = :agency ORDER BY q.received_at DESC LIMIT :n"
            ),
            {"agent": agent_id, "agency": scope.agency, "n": limit},
        )
    ).all()
    await scope.audit(
        session,
        service="ingest",
        action="agents.quarantine.view",
        object_type="agent_quarantine",
        object_ids=[str(r.id) for r in rows][:100],
        source_ip=client_ip(request),
        record_count=len(rows),
        details={"reason": reason, "agent_id": str(agent_id) if agent_id else None},
    )
    return QuarantineList(
        posts=[
            QuarantinedPost(
                id=r.id,
                agent_id=r.agent_id,
                received_at=r.received_at,
                data_type=r.data_type,
                reason=r.reason,
                body=redact(bytes(r.body)),
            )
            for r in rows
        ]
    )


@router.get("/v1/agents/spool", summary="The local spool: segments waiting for import")
async def spool_status(principal: Admin, intake: Intake) -> SpoolStatus:
    stats = spool_stats(intake.spool_dir)
    return SpoolStatus(
        segments=stats["segments"],
        bytes=stats["bytes"],
        appended_here=intake.writer.appended,
        imported_here=dict(intake.importer.totals),
    )


@router.get("/v1/agents/{agent_id}", summary="One agent")
async def get_agent(agent_id: uuid.UUID, principal: Viewer, session: SessionDep) -> AgentOut:
    agent = await admin.get_agent(session, agent_id, principal.agency)
    dropped = await admin.dropped_fields(session, [agent.id])
    return admin.agent_out(agent, dropped.get(agent.id))


@router.post("/v1/agents/{agent_id}/rotate", summary="A new token; the old one stops working")
async def rotate(
    agent_id: uuid.UUID, request: Request, principal: Admin, session: SessionDep, intake: Intake
) -> AgentWithToken:
    agent = await admin.get_agent(session, agent_id, principal.agency)
    out = await admin.rotate(session, agent)
    await _audit(session, principal, request, "agent.rotate_token", agent.id)
    await session.commit()
    # In the snapshot every ingest process reads before the answer: the token works at once, PostgreSQL or not.
    await intake.registry.note(session)
    return out


@router.post("/v1/agents/{agent_id}/disable", summary="Refuse the agent's posts (403)")
async def disable(
    agent_id: uuid.UUID, request: Request, principal: Admin, session: SessionDep, intake: Intake
) -> AgentOut:
    agent = await admin.set_disabled(session, await admin.get_agent(session, agent_id, principal.agency), True)
    await _audit(session, principal, request, "agent.disable", agent.id)
    await session.commit()
    # In the snapshot every ingest process reads before the answer: the token works at once, PostgreSQL or not.
    await intake.registry.note(session)
    return admin.agent_out(agent)


@router.post("/v1/agents/{agent_id}/enable", summary="Accept the agent's posts again")
async def enable(
    agent_id: uuid.UUID, request: Request, principal: Admin, session: SessionDep, intake: Intake
) -> AgentOut:
    agent = await admin.set_disabled(session, await admin.get_agent(session, agent_id, principal.agency), False)
    await _audit(session, principal, request, "agent.enable", agent.id)
    await session.commit()
    # In the snapshot every ingest process reads before the answer: the token works at once, PostgreSQL or not.
    await intake.registry.note(session)
    return admin.agent_out(agent)


@router.get("/v1/agents/{agent_id}/activity", summary="When the agent was collecting (log of use)")
async def activity(
    agent_id: uuid.UUID,
    principal: Viewer,
    session: SessionDep,
    start: datetime | None = None,
    end: datetime | None = None,
) -> AgentActivityOut:
    agent = await admin.get_agent(session, agent_id, principal.agency)
    rows = await session.execute(
        text(
            "SELECT started_at, ended_at FROM ingest.agent_activity WHERE agent_id = :a "
            "AND (CAST(:start AS timestamptz) IS NULL OR ended_at >= :start) "
            "AND (CAST(:end AS timestamptz) IS NULL OR started_at < :end) ORDER BY started_at"
        ),
        {"a": agent.id, "start": start, "end": end},
    )
    return AgentActivityOut(
        agent_id=agent.id, intervals=[ActiveInterval(started_at=r.started_at, ended_at=r.ended_at) for r in rows]
    )

"""A quarantined agent post in full, only under a grant; or deleted unread by an admin of its agency.

The listing (`GET /v1/agents/quarantine`) shows every post redacted. The full post (plates, positions, crops the agent
sent) leaves ingest only to access, on a token access signed for this one post under a grant of the post's agency
(shared/acting_for.py); access checks that the grant covers the post's plates, dates and area and writes the audit
entry with the answer (services/access/quarantine.py). An admin who need not read a post deletes it, audited in the
same transaction (13.824 subd. 7(a): no door without a grant)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from services.ingest.agents.parse import _gps
from shared.acting_for import acting_for_grant
from shared.audit import client_ip
from shared.auth import ADMIN, Principal, require_roles
from shared.db import SessionDep
from shared.errors import NotFound
from shared.scoping import Scoped
from shared.service_callers import ACCESS_ONLY, check_caller
from shared.text import CleanInput

router = APIRouter(tags=["agents"])
Admin = Annotated[Principal, Depends(require_roles(ADMIN))]
Service = Annotated[Principal, Depends(require_roles("service"))]


class PostIn(CleanInput):
    post_id: uuid.UUID
    agency: str = Field(max_length=80, description="the grant's agency: only its agents' posts open")


class FullPost(BaseModel):
    post_id: uuid.UUID
    agent_id: uuid.UUID | None
    received_at: datetime
    captured_at: datetime | None  # unknown for a body that does not parse
    data_type: str | None
    reason: str
    plates: list[str]
    lat: float | None  # where the post says it was captured (its GPS), when it says
    lon: float | None
    body: str = Field(description="the post as kept: statute-disallowed fields removed, crops as the agent sent them")


def _position(body: bytes) -> tuple[float | None, float | None]:
    try:
        doc: Any = json.loads(body)
    except ValueError:
        return None, None
    return _gps(doc) if isinstance(doc, dict) else (None, None)


_OWN_POST = (
    "SELECT q.* FROM ingest.agent_quarantine q JOIN ingest.agents a ON a.id = q.agent_id "
    "WHERE q.id = :id AND coalesce(a.agency, '') = :agency"
)


@router.post(
    "/v1/internal/agents/quarantine/post",
    tags=["internal"],
    summary="One quarantined post in full (access, under a grant of the post's agency)",
)
async def quarantined_post(
    body: PostIn, request: Request, principal: Service, scope: Scoped, session: SessionDep
) -> FullPost:
    # access's token for this post under a grant of the body's agency (shared/acting_for.py), or 403.
    grant = await acting_for_grant(request, principal)
    check_caller(principal, ACCESS_ONLY)
    row = (await session.execute(text(_OWN_POST), {"id": body.post_id, "agency": grant.agency})).one_or_none()
    if row is None:  # another agency's post does not exist for this grant (the one-door rule)
        raise NotFound("no such quarantined post in the grant's agency")
    raw = bytes(row.body)
    lat, lon = _position(raw)
    await scope.audit(
        session, service="ingest", action="agents.quarantine.post", object_type="agent_quarantine",
        object_ids=[str(row.id)], source_ip=client_ip(request), record_count=1, grant_id=grant.grant_id,
    )  # fmt: skip
    return FullPost(
        post_id=row.id, agent_id=row.agent_id, received_at=row.received_at, captured_at=row.captured_at,
        data_type=row.data_type, reason=row.reason, plates=list(row.plates), lat=lat, lon=lon,
        body=raw.decode("utf-8", "replace"),
    )  # fmt: skip


@router.delete(
    "/v1/agents/quarantine/{post_id}",
    status_code=204,
    summary="Delete a quarantined post unread (admins of its agency, with a reason; audited)",
)
async def delete_post(
    post_id: uuid.UUID,
    request: Request,
    principal: Admin,
    scope: Scoped,
    session: SessionDep,
    reason: str = Query(min_length=10, max_length=500, description="why the post goes unread (audited)"),
) -> Response:
    row = (
        await session.execute(
            text(
                "DELETE FROM ingest.agent_quarantine q USING ingest.agents a WHERE a.id = q.agent_id "
                "AND q.id = :id AND coalesce(a.agency, '') = :agency RETURNING q.agent_id, q.received_at"
            ),
            {"id": post_id, "agency": scope.agency},
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such quarantined post in your agency")
    await scope.audit(
        session,
        service="ingest",
        action="agents.quarantine.delete",
        object_type="agent_quarantine",
        object_ids=[str(post_id)],
        source_ip=client_ip(request),
        details={"reason": reason, "agent_id": str(row.agent_id), "received_at": row.received_at.isoformat()},
    )
    return Response(status_code=204)

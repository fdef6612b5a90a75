"""A quarantined camera-agent post in full, under a grant (13.824 subd. 7(a)): the same door as a search.

Ingest lists quarantined posts redacted (`GET /v1/agents/quarantine`). The full post (plates, position, the crops the
agent sent) opens here only for the holder of an active grant whose agency is the post's and whose plates, dates and
area cover it, as for an evidence export (`evidence.read_outside_grant`, each plate the post names): access signs a
token for this one post under the grant (shared/acting_for.py), ingest answers only that, and the audit entry (grant,
case, post) is written in the transaction that answers. Refusals are audited too."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.access import events, workflow
from services.access.deps import Discloser, FiguresDep
from services.access.evidence import read_outside_grant
from services.access.models import Grant
from services.access.reports import ServiceRefused
from services.access.schemas import RECIPIENT_NOTICE
from shared.db import SessionDep
from shared.errors import AppError, Forbidden, NotFound, Unprocessable
from shared.scoping import Scoped
from shared.text import CleanInput

router = APIRouter(tags=["grants"])


class OpenPostIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    grant_id: uuid.UUID
    post_id: uuid.UUID = Field(description="the quarantined post's id, as `GET /v1/agents/quarantine` lists it")


class OpenedPost(BaseModel):
    grant_id: uuid.UUID
    case_number: str
    post_id: uuid.UUID
    agent_id: uuid.UUID | None
    received_at: str
    captured_at: str | None
    data_type: str | None
    reason: str
    plates: list[str]
    lat: float | None
    lon: float | None
    body: str
    recipient_notice: dict[str, str] = Field(default_factory=lambda: dict(RECIPIENT_NOTICE))


def post_outside_grant(grant: Grant, post: dict[str, Any]) -> str | None:
    """Why the grant does not cover the post (every plate it names, its capture time, its position), or None. A post
    whose time, or (for a grant with plates or an area) whose plates or position, cannot be read is not covered."""
    if post.get("captured_at") is None:
        return "the post's capture time is unknown: no grant's dates cover it"
    plates = post.get("plates") or []
    if grant.plates and not plates:
        return "the post names no plate: a grant for plates does not cover it"
    for plate in plates or [None]:
        reason = read_outside_grant(grant, {**post, "plate": plate})
        if reason is not None:
            return reason.replace("the read", "the post")
    return None


@router.post(
    "/v1/quarantine/open",
    summary="A quarantined agent post in full, under a grant that covers it (its holder; audited)",
)
async def open_post(
    body: OpenPostIn,
    request: Request,
    principal: Discloser,
    scope: Scoped,
    session: SessionDep,
    figures: FiguresDep,
) -> OpenedPost:
    grant = await session.get(Grant, body.grant_id)
    ids = [str(body.post_id)]

    async def refused(error: AppError) -> Exception:
        return await events.refuse(
            session, error, "agents.quarantine.open", request=request, principal=principal,
            object_type="agent_quarantine", object_ids=ids, grant_id=str(body.grant_id),
            case_number=grant.case_number if grant else None,
        )  # fmt: skip

    if grant is None:
        raise await refused(NotFound("no such grant"))
    if grant.holder != principal.subject:
        raise await refused(Forbidden("this grant was given to someone else"))
    if not workflow.grant_active(grant):
        raise await refused(Forbidden("the grant is revoked or expired"))
    agency = grant.data_agency or ""  # the grant opens its agency's posts only
    try:
        post = await figures.post(
            "ingest", "/v1/internal/agents/quarantine/post", {"post_id": ids[0], "agency": agency},
            grant_id=str(grant.id),
        )  # fmt: skip
    except ServiceRefused as exc:
        raise await refused(NotFound(exc.detail) if exc.status == 404 else Unprocessable(exc.detail)) from None
    outside = post_outside_grant(grant, post)
    if outside is not None:
        raise await refused(Forbidden(f"outside the grant: {outside}"))
    # In the transaction that answers: the post is not returned unless its entry commits.
    await events.record(
        session, "agents.quarantine.open", request=request, principal=principal, object_type="agent_quarantine",
        object_ids=ids, grant_id=str(grant.id), case_number=grant.case_number, record_count=1,
        details={"plates": len(post["plates"]), "agency": agency},
    )  # fmt: skip
    return OpenedPost(grant_id=grant.id, case_number=grant.case_number, **post)

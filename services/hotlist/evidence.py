"""Hotlist's part of an evidence package (access, role `service`): a read's hits with their verifications and
dispositions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from services.hotlist import service
from services.hotlist.models import Hit
from shared.acting_for import acting_for_grant
from shared.auth import SERVICE, Principal, require_roles
from shared.db import SessionDep
from shared.scoping import Scoped
from shared.text import CleanInput

router = APIRouter(tags=["internal"])
Service = Annotated[Principal, Depends(require_roles(SERVICE))]


class ReadHitsIn(CleanInput):
    read_id: str = Field(min_length=1, max_length=64)
    agency: str = Field(max_length=80, description="the grant's agency: only the hits it is custodian of")


class ReadHitsOut(BaseModel):
    read_id: str
    hits: list[dict[str, Any]]


@router.post("/v1/internal/hits/of-read", summary="A read's hits with verifications and dispositions (evidence)")
async def hits_of_read(
    body: ReadHitsIn, request: Request, principal: Service, scope: Scoped, session: SessionDep
) -> ReadHitsOut:
    # Called by access only, with a token signed for this read under a grant it checked (shared/acting_for.py):
    # the grant's agency's hits only. Access records the export as a disclosure with its audit entry.
    grant = await acting_for_grant(request, principal)
    stmt = select(Hit).where(Hit.read_id == body.read_id, col(Hit.custodian) == grant.agency)
    hits = (await session.exec(stmt.order_by(col(Hit.created_at)))).all()
    return ReadHitsOut(
        read_id=body.read_id,
        hits=[(await service.hit_detail(session, h)).model_dump(mode="json") for h in hits],
    )

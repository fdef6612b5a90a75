"""Hotlist's part of an evidence package (access, role `service`): a read's hits with their verifications and
dispositions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlmodel import col, select

from services.hotlist import service
from services.hotlist.models import Hit
from shared.auth import SERVICE, Principal, require_roles
from shared.db import SessionDep

router = APIRouter(tags=["internal"])
Service = Annotated[Principal, Depends(require_roles(SERVICE))]


class ReadHitsIn(BaseModel):
    read_id: str = Field(min_length=1, max_length=64)


class ReadHitsOut(BaseModel):
    read_id: str
    hits: list[dict[str, Any]]


@router.post("/v1/internal/hits/of-read", summary="A read's hits with verifications and dispositions (evidence)")
async def hits_of_read(body: ReadHitsIn, principal: Service, session: SessionDep) -> ReadHitsOut:
    hits = (await session.exec(select(Hit).where(Hit.read_id == body.read_id).order_by(col(Hit.created_at)))).all()
    return ReadHitsOut(
        read_id=body.read_id,
        hits=[(await service.hit_detail(session, h)).model_dump(mode="json") for h in hits],
    )

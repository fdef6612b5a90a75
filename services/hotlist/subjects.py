"""A Safe at Home participant's request, hotlist's part (Minn. Stat. 13.824 subd. 3(c)): the hits raised on reads of
their plate are destroyed when ingest records the request, but those a hold keeps (active criminal investigative
data). The plate is private: it is in no log line or audit entry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from services.hotlist.deps import EngineDep, MatcherDep
from services.hotlist.matching import lookup, lookup_agency
from services.hotlist.retention import ACTIVE_HELD, destroy_hits
from shared import plates
from shared.audit import record
from shared.auth import SERVICE, Principal, require_roles
from shared.errors import Unprocessable
from shared.service_callers import INGEST_ONLY, check_caller
from shared.text import CleanInput

router = APIRouter(tags=["retention"])
Service = Annotated[Principal, Depends(require_roles(SERVICE))]


class ProtectedPlateIn(CleanInput):
    plate: str = Field(min_length=1, max_length=12)
    agency: str = Field(default="", max_length=80)  # the recording agency: only its hits go


class Listed(BaseModel):
    listed: bool


class HitsDestroyed(BaseModel):
    hits_destroyed: int
    verifications_destroyed: int
    dispositions_destroyed: int
    hits_kept_held: int


@router.post(
    "/v1/internal/subject-requests/safe-at-home",
    tags=["internal"],
    summary="Destroy the hits on a Safe at Home participant's plate, but held ones (ingest, on the request)",
)
async def destroy_plate_hits(body: ProtectedPlateIn, principal: Service, engine: EngineDep) -> HitsDestroyed:
    check_caller(principal, INGEST_ONLY)
    plate = plates.normalize(body.plate)
    if not plate:
        raise Unprocessable("plate: no letters or digits")
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT id, id IN ({ACTIVE_HELD}) AS held FROM hotlist.hits "
                    "WHERE read_plate = :p AND custodian = :a FOR UPDATE"
                ),
                {"p": plate, "a": body.agency},
            )
        ).all()
        h, v, d = await destroy_hits(conn, [r.id for r in rows if not r.held])
        out = HitsDestroyed(
            hits_destroyed=h,
            verifications_destroyed=v,
            dispositions_destroyed=d,
            hits_kept_held=sum(1 for r in rows if r.held),
        )
        async with AsyncSession(bind=conn) as session:
            await record(
                session,
                service="hotlist",
                action="subject_request.safe_at_home",
                principal=principal,
                object_type="hit",
                record_count=h,
                details=out.model_dump(),
            )
    return out


@router.post(
    "/v1/internal/plates/listed",
    tags=["internal"],
    summary="Whether a plate is on the state list or one of the agency's lists (ingest's two-person rule asks)",
)
async def plate_listed(body: ProtectedPlateIn, principal: Service, matcher: MatcherDep) -> Listed:
    check_caller(principal, INGEST_ONLY)  # which plates are listed is not another service's to ask
    plate = plates.normalize(body.plate)
    if not plate:
        raise Unprocessable("plate: no letters or digits")
    snap = matcher.snapshot
    on_bca = snap is not None and any(c.match == "exact" for c in lookup(snap.index, plate, []))
    on_agency = any(
        kind == "exact" for _, kind in lookup_agency(matcher.agency, plate, [], datetime.now(UTC), body.agency)
    )
    return Listed(listed=on_bca or on_agency)

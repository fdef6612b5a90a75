"""Requests from data subjects about their plate. Safe at Home participants (Minn. Stat. 13.824 subd. 3(c)): the
reads of their plate are destroyed at once (rows, photos, hit events; hotlist destroys the hits raised on them), but
those a hold keeps (active criminal investigative data); later reads are destroyed at collection (protected.py).
The request itself is private data: the plate lives only in ingest's own table, beside the reads it protects (no
report, audit entry or log carries it).

(Exculpatory-evidence requests, subd. 3(b), are holds of kind `exculpatory`: see holds.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.clients import CallFailed
from services.ingest.deps import Ctx
from services.ingest.protected import destroy_reads
from services.ingest.retention_models import ACTIVE_HELD_READS, ProtectedPlate
from shared import plates
from shared.audit import client_ip, record
from shared.auth import SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import Unavailable, Unprocessable
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
    reads_destroyed: int
    objects_destroyed: int
    hits_destroyed: int | None  # None: this ingest does not call hotlist (no hits were raised through it)


async def destroy_protected(
    engine: AsyncEngine, store: ObjectStore, settings: Settings, protected: list[str] | None = None
) -> tuple[int, int]:
    """Destroy every read of a protected plate (ours or the car's own reading) but held ones, with its objects, hit
    events and the camera agents' records of it."""
    async with engine.begin() as conn:
        if protected is None:
            protected = [r[0] for r in await conn.execute(text("SELECT plate FROM ingest.protected_plates"))]
        if not protected:
            return 0, 0
        # Held reads stay: the statute excepts active criminal investigative data.
        ids = [
            r[0]
            for r in await conn.execute(
                text(
                    "SELECT id FROM ingest.reads WHERE (plate = ANY(:p) OR car_plate = ANY(:p)) "
                    f"AND id NOT IN ({ACTIVE_HELD_READS})"
                ),
                {"p": protected},
            )
        ]
        keys = await destroy_reads(conn, ids)
    if keys:
        await store.delete_keys(keys)
    return len(ids), len(keys)


@router.post(
    "/v1/subject-requests/safe-at-home",
    status_code=201,
    summary="A Safe at Home participant's request: destroy the reads of their plate now and from now on",
)
async def safe_at_home(
    body: SafeAtHomeIn, request: Request, principal: Supervisor, ctx: Ctx, session: SessionDep
) -> SafeAtHomeOut:
    plate = plates.normalize(body.plate)
    if not plate:
        raise Unprocessable("plate: no letters or digits")
    if body.received_on.tzinfo is None:
        raise Unprocessable("received_on needs a time zone")
    existing = (
        await session.execute(text("SELECT id FROM ingest.protected_plates WHERE plate = :p"), {"p": plate})
    ).scalar_one_or_none()
    if existing is None:
        entry = ProtectedPlate(
            plate=plate,
            request_reference=body.request_reference,
            received_on=body.received_on,
            recorded_by=principal.subject,
            recorded_at=datetime.now(UTC),
        )
        session.add(entry)
        await session.flush()
        request_id = str(entry.id)
    else:
        request_id = str(existing)
    await session.commit()  # the plate is protected before its reads go, so a read arriving meanwhile goes too
    hits: int | None = None
    if ctx.hotlist is not None:
        try:
            hits = int((await ctx.hotlist.forget_plate(plate))["hits_destroyed"])
        except (CallFailed, KeyError, TypeError, ValueError) as exc:
            # Recorded and protected already: a retry of the same request finishes the job.
            raise Unavailable(f"hotlist did not destroy the plate's hits ({exc}): retry this request") from exc
    reads, objects = await destroy_protected(ctx.engine, ctx.store, ctx.settings, [plate])
    details: dict[str, Any] = {"reads_destroyed": reads, "objects_destroyed": objects, "hits_destroyed": hits}
    await record(
        session,
        service="ingest",
        action="subject_request.safe_at_home",
        principal=principal,
        object_type="subject_request",
        object_ids=[request_id],
        source_ip=client_ip(request),
        record_count=reads,
        details=details,
    )
    return SafeAtHomeOut(request_id=request_id, reads_destroyed=reads, objects_destroyed=objects, hits_destroyed=hits)

"""Dependencies of the ingest routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.ingest.service import IngestContext
from shared.auth import ADMIN, AUDITOR, OFFICER, SERVICE, SUPERVISOR, Principal, require_roles
from shared.errors import Unavailable


async def get_ctx(request: Request) -> IngestContext:
    ctx: IngestContext | None = getattr(request.app.state, "ingest", None)
    if ctx is None:
        raise Unavailable("ingest is starting")
    return ctx


Ctx = Annotated[IngestContext, Depends(get_ctx)]
Officer = Annotated[Principal, Depends(require_roles(OFFICER))]
ShiftReader = Annotated[Principal, Depends(require_roles(OFFICER, SUPERVISOR, AUDITOR, ADMIN))]
StreamReader = Annotated[Principal, Depends(require_roles(OFFICER, SUPERVISOR, ADMIN))]
Overseer = Annotated[Principal, Depends(require_roles(SUPERVISOR, AUDITOR, ADMIN))]
AgencyReader = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN))]
Service = Annotated[Principal, Depends(require_roles(SERVICE))]

"""Dependencies of the hotlist routes: the worker's matcher, distribution cache and ingest client."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

# Async on purpose: a sync dependency runs in the thread pool, a hop that costs more than matching.
from sqlalchemy.ext.asyncio import AsyncEngine

from services.hotlist.ingest_client import IngestClient
from services.hotlist.matching import Matcher
from services.hotlist.service import Distribution, Sessions
from shared.auth import ADMIN, OFFICER, SERVICE, SUPERVISOR, Principal, require_roles
from shared.errors import Unavailable
from shared.settings import Settings


async def _matcher(request: Request) -> Matcher:
    matcher: Matcher = request.app.state.matcher
    return matcher


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def sessions_of(request: Request) -> Sessions:
    sessions: Sessions | None = getattr(request.app.state, "sessionmaker", None)
    if sessions is None:
        raise Unavailable("database not configured")
    return sessions


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _distribution(request: Request) -> Distribution:
    dist: Distribution = request.app.state.distribution
    return dist


async def _ingest(request: Request) -> IngestClient:
    client: IngestClient = request.app.state.ingest
    return client


MatcherDep = Annotated[Matcher, Depends(_matcher)]
SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
SessionsDep = Annotated[Sessions, Depends(sessions_of)]
DistributionDep = Annotated[Distribution, Depends(_distribution)]
IngestDep = Annotated[IngestClient, Depends(_ingest)]

MATCHING_ROLES = (SERVICE, ADMIN)
Matching = Annotated[Principal, Depends(require_roles(*MATCHING_ROLES))]
Cars = Annotated[Principal, Depends(require_roles(OFFICER, SUPERVISOR, SERVICE, ADMIN))]
Officers = Annotated[Principal, Depends(require_roles(OFFICER, SUPERVISOR))]
# Admins: the covert hits of their own lists only (routes._may_open); auditors read the audit trail, not hits.
HitReaders = Annotated[Principal, Depends(require_roles(OFFICER, SUPERVISOR, ADMIN))]
Supervisors = Annotated[Principal, Depends(require_roles(SUPERVISOR, ADMIN))]
Admins = Annotated[Principal, Depends(require_roles(ADMIN))]

"""Dependencies of the access service's routes: role checks plus the live-session rule, and app-state handles."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.access import identity
from services.access.reports import FiguresClient
from services.access.search import IngestClient
from services.access.security import KeyRing, Passwords
from shared.auth import Principal, require_roles
from shared.db import SessionDep
from shared.settings import Settings
from shared.storage import ObjectStore


def allow(*roles: str, trained: bool = True):  # type: ignore[no-untyped-def]
    """`require_roles(*roles)`, then the caller's session must be live (not logged out, revoked or idle)."""
    role_check = require_roles(*roles, trained=trained)

    # A default, not Annotated: the closure's `role_check` is invisible to postponed annotations.
    async def _dep(request: Request, session: SessionDep, principal: Principal = Depends(role_check)) -> Principal:
        await identity.check_session(session, request.app.state.settings, principal, request)
        return principal

    _dep.roles = role_check.roles  # type: ignore[attr-defined]
    return _dep


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _store(request: Request) -> ObjectStore:
    store: ObjectStore = request.app.state.store
    return store


def _keys(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys
    return keys


def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


def _ingest(request: Request) -> IngestClient:
    ingest: IngestClient = request.app.state.ingest
    return ingest


def _figures(request: Request) -> FiguresClient:
    figures: FiguresClient = request.app.state.figures
    return figures


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[ObjectStore, Depends(_store)]
KeysDep = Annotated[KeyRing, Depends(_keys)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
IngestDep = Annotated[IngestClient, Depends(_ingest)]
# Ingest's and hotlist's figures and records, asked under a grant or as the agency's viewer (reports.FiguresClient).
FiguresDep = Annotated[FiguresClient, Depends(_figures)]

# Logging out touches no data: an untrained officer may end their session.
Anyone = Annotated[
    Principal, Depends(allow("officer", "supervisor", "auditor", "admin", "agency", "service", trained=False))
]
Requester = Annotated[Principal, Depends(allow("officer", "supervisor", "agency"))]
Viewer = Annotated[Principal, Depends(allow("officer", "supervisor", "agency", "auditor"))]
Supervisor = Annotated[Principal, Depends(allow("supervisor"))]
Discloser = Annotated[Principal, Depends(allow("officer", "supervisor"))]
Overseer = Annotated[Principal, Depends(allow("supervisor", "auditor"))]
Auditor = Annotated[Principal, Depends(allow("auditor"))]
Admin = Annotated[Principal, Depends(allow("admin"))]

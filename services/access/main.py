"""The access service: identities, tokens, access requests and grants, the audit log."""

from __future__ import annotations

from fastapi import FastAPI

from services.access.routes import router
from shared.app import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "access",
        settings or get_settings(),
        routers=[router],
        description="Identities, tokens, access requests with supervisor approval, and the audit log.",
    )

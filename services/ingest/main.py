"""The ingest service: officer shifts and plate reads from the squad cars."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "ingest",
        settings or get_settings(),
        description="Officer shifts and plate reads posted by the cars' Mobile Data Computers.",
    )

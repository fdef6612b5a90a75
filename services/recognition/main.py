"""The recognition service: plate OCR on PP-OCR models."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "recognition",
        settings or get_settings(),
        description="Plate readings (text, box, confidences, alternatives) from photos.",
    )

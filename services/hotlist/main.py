"""The hotlist service: BCA hot-list sync, distribution to cars, matching and hits."""

from __future__ import annotations

from fastapi import FastAPI

from shared.app import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        "hotlist",
        settings or get_settings(),
        description="Hot-list sync from the BCA, lists for the cars, matching of reads, hits and dispositions.",
    )

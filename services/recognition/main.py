"""The recognition service: plate OCR on PP-OCR models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from fastapi import FastAPI

from services.recognition.pipeline import served_options
from services.recognition.routes import router
from services.recognition.second_opinion import use_reader
from services.recognition.second_reader import WEIGHTS, PlateReader
from services.recognition.service import OcrPool
from shared.app import create_service_app
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        options = replace(served_options(settings.recognition_detect_sides), second=settings.recognition_second_reader)
        if options.second:
            # Built (and its weights' SHA-256 checked) before the first photo: a wrong file refuses to start.
            use_reader(PlateReader(settings.recognition_second_reader_weights or WEIGHTS))
        pool = OcrPool(
            settings.recognition_workers,
            settings.recognition_queue,
            options=options,
            threads=settings.recognition_intra_op_threads,
            spin=settings.recognition_spin,
        )
        await pool.start()
        app.state.ocr_pool = pool
        try:
            yield
        finally:
            pool.close()

    return create_service_app(
        "recognition",
        settings,
        routers=[router],
        lifespan=lifespan,
        description="Plate readings (text, box, confidences, alternatives) from photos.",
        # A full batch of the largest photos and the form around them: nothing bigger is spooled.
        max_body_bytes=settings.recognition_max_image_bytes * settings.recognition_max_batch + 64 * 1024,
    )

"""POST /v1/recognize and /v1/recognize/batch (docs/contracts.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile

from services.recognition.pipeline import Recognition
from services.recognition.schemas import BatchItem, BatchResponse, Plate, RecognizeResponse
from services.recognition.service import OcrPool
from shared.auth import ADMIN, OFFICER, SERVICE, Principal, require_roles
from shared.errors import AppError, BadRequest, PayloadTooLarge
from shared.settings import Settings

router = APIRouter(prefix="/v1/recognize", tags=["recognition"])
Caller = Annotated[Principal, Depends(require_roles(SERVICE, OFFICER, ADMIN))]


def _pool(request: Request) -> OcrPool:
    pool: OcrPool = request.app.state.ocr_pool
    return pool


Pool = Annotated[OcrPool, Depends(_pool)]


class ClientGone(AppError):
    status_code = 499  # nginx's "client closed request": nobody reads it, the access log says what happened


async def _gone(request: Request) -> None:
    """Returns once the caller has disconnected (the body is read by then, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


_FORM_OVERHEAD = 64 * 1024  # multipart headers and boundaries around the image bytes


def _body_limit(*, batch: bool):  # type: ignore[no-untyped-def]
    """Refuse an oversized upload from its Content-Length, before the form is parsed and spooled."""

    async def _check(request: Request) -> None:
        settings: Settings = request.app.state.settings
        images = settings.recognition_max_batch if batch else 1
        limit = settings.recognition_max_image_bytes * images + _FORM_OVERHEAD
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")

    return Depends(_check)


async def _read_upload(upload: UploadFile, settings: Settings) -> bytes:
    limit = settings.recognition_max_image_bytes
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(f"image larger than {limit} bytes")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"image larger than {limit} bytes")
    return data


def _plates(result: Recognition) -> list[Plate]:
    return [
        Plate(
            plate=p.plate,
            raw=p.raw,
            confidence=p.confidence,
            box=p.box,
            char_confidences=p.char_confidences,
            alternatives=[{"plate": a, "confidence": c} for a, c in p.alternatives],  # type: ignore[misc]
            state=p.state,
            state_confidence=p.state_confidence,
            agreement=p.agreement,  # type: ignore[arg-type]
            readings=p.readings,
        )
        for p in result.plates
    ]


@router.post("", summary="Plate readings from one photo (JPEG/PNG)", dependencies=[_body_limit(batch=False)])
async def recognize(
    request: Request, _: Caller, pool: Pool, image: Annotated[UploadFile, File(description="JPEG or PNG")]
) -> RecognizeResponse:
    data = await _read_upload(image, request.app.state.settings)
    result = await pool.recognize_for(data, lambda: _gone(request))
    if result is None:
        raise ClientGone("the caller went away before its photo was read")
    return RecognizeResponse(
        plates=_plates(result),
        image={"width": result.width, "height": result.height},  # type: ignore[arg-type]
        timings_ms=result.timings_ms,  # type: ignore[arg-type]
    )


@router.post(
    "/batch",
    summary="Plate readings from several photos; a bad photo fails alone",
    dependencies=[_body_limit(batch=True)],
)
async def recognize_batch(
    request: Request, _: Caller, pool: Pool, images: Annotated[list[UploadFile], File(description="JPEG or PNG")]
) -> BatchResponse:
    settings: Settings = request.app.state.settings
    if len(images) > settings.recognition_max_batch:
        raise BadRequest(f"at most {settings.recognition_max_batch} images per batch")
    payloads: list[bytes | AppError] = []
    for upload in images:
        try:
            payloads.append(await _read_upload(upload, settings))
        except PayloadTooLarge as exc:
            payloads.append(exc)
    # The photos are read one after another, so the batch holds one place in the pool at a time.
    pool.admit()
    results: list[BatchItem] = []
    try:
        for upload, payload in zip(images, payloads, strict=True):
            if isinstance(payload, AppError):
                results.append(BatchItem(filename=upload.filename, detail=str(payload.detail)))
                continue
            try:
                result = await pool.recognize(payload)
            except AppError as exc:
                results.append(BatchItem(filename=upload.filename, detail=str(exc.detail)))
                continue
            results.append(
                BatchItem(filename=upload.filename, plates=_plates(result), timings_ms=result.timings_ms)  # type: ignore[arg-type]
            )
    finally:
        pool.release()
    return BatchResponse(results=results)

"""The recognition API's shapes (docs/contracts.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Alternative(BaseModel):
    plate: str
    confidence: float


class Plate(BaseModel):
    plate: str = Field(description="normalized: upper case, letters and digits only (the letter O read as 0)")
    raw: str = Field(description="the recognizer's own reading of the line")
    confidence: float = Field(ge=0, le=1)
    box: list[list[float]] = Field(
        description="quadrilateral in image pixels: top-left, top-right, bottom-right, bottom-left"
    )
    char_confidences: list[float]
    alternatives: list[Alternative]
    state: str | None = None
    state_confidence: float | None = None


class ImageSize(BaseModel):
    width: int
    height: int


class Timings(BaseModel):
    decode: float
    locate: float
    recognize: float
    total: float


class RecognizeResponse(BaseModel):
    plates: list[Plate]
    image: ImageSize
    timings_ms: Timings


class BatchItem(BaseModel):
    filename: str | None
    plates: list[Plate] | None = None
    timings_ms: Timings | None = None
    detail: str | None = Field(default=None, description="why this image failed (then no plates)")


class BatchResponse(BaseModel):
    results: list[BatchItem]

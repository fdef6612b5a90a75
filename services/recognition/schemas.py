"""The recognition API's shapes (docs/contracts.md)."""

from __future__ import annotations

from typing import Literal

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
    agreement: Literal["both", "one", "none"] | None = Field(
        default=None,
        description="the two readers (PP-OCR and the plate-specific recognizer): both gave this reading, one did, "
        "or none is sure of it; null when the second reader is off",
    )
    readings: dict[str, str | None] = Field(
        default_factory=dict, description="each reader's own best reading: `first` (PP-OCR), `second`"
    )


class ImageSize(BaseModel):
    width: int
    height: int


class Timings(BaseModel):
    decode: float
    locate: float
    recognize: float
    second: float = 0.0
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

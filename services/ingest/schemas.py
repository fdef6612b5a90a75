"""API models of the ingest service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared import plates
from shared.text import CleanInput

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"


class ShiftStart(CleanInput):
    model_config = ConfigDict(extra="forbid")

    badge: str = Field(min_length=1, max_length=32)
    unit: str = Field(pattern=_ID, description="The car (unit) the officer is in")
    cameras: list[str] = Field(default_factory=list, max_length=16, description="Camera ids of the unit's readers")

    @field_validator("cameras")
    @classmethod
    def _camera_ids(cls, value: list[str]) -> list[str]:
        for cam in value:
            if not cam or len(cam) > 64:
                raise ValueError("camera ids are 1-64 characters")
        return value


class ShiftOut(BaseModel):
    shift_id: uuid.UUID
    unit: str
    agency: str | None
    badge: str
    cameras: list[str]
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    online: bool


class ShiftList(BaseModel):
    shifts: list[ShiftOut]


class ReadMetadata(CleanInput):
    """Only what Minn. Stat. 13.824 subd. 2(a) allows (plate, date, time, location, pictures) and where it came
    from (unit, camera, the car's id for the read). Anything else is refused, not silently stored."""

    model_config = ConfigDict(extra="forbid")

    client_read_id: str = Field(pattern=_ID, description="The car's id for this read: the idempotency key")
    unit: str = Field(pattern=_ID)
    camera: str = Field(min_length=1, max_length=64)
    captured_at: AwareDatetime = Field(description="Capture time with its zone (ISO 8601)")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    heading: float | None = Field(
        default=None, ge=0, lt=360, description="Degrees from north: accepted, never stored (subd. 2(a))"
    )
    speed: float | None = Field(
        default=None, ge=0, le=120, description="Metres per second: accepted, never stored (subd. 2(a))"
    )
    plate: str | None = Field(default=None, max_length=16, description="The car's own reading, when it made one")
    plate_confidence: float | None = Field(default=None, ge=0, le=1)
    state: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    @field_validator("plate")
    @classmethod
    def _plate(cls, value: str | None) -> str | None:
        if value is None:
            return None
        norm = plates.normalize(value)
        if not plates.is_plausible(norm):
            raise ValueError("plate must be 2-8 letters and digits")
        return norm


class BatchItem(ReadMetadata):
    """A queued read in a batch: its photo and crop are the multipart files named `photo:<client_read_id>` and
    `crop:<client_read_id>`."""


class Hit(CleanInput):
    """A hot-list hit as hotlist reports it (docs/contracts.md): hotlist's `HitOut`, field for field; a key it does
    not know is refused like any request body's."""

    hit_id: str
    read_id: str
    entry_id: str | None = None
    list: str | None = None
    list_version: int | None = None
    category: str | None = None
    category_label: str | None = None
    concerns: str | None = None
    owner_warning: str | None = None
    match: str | None = None
    read_plate: str | None = None
    entry_plate: str | None = None
    entry_state: str | None = None
    state_check: str | None = None
    covert: bool = False
    list_owner: str | None = None  # the owning agency's ORI: where a covert hit goes
    priority: int | None = None
    notice: str | None = None


PendingWork = Literal["recognition", "match"]


class ReadResult(BaseModel):
    read_id: uuid.UUID
    client_read_id: str
    unit: str
    captured_at: datetime
    status: Literal["complete", "pending"]
    pending: list[PendingWork]
    duplicate: bool = Field(description="True when this is a retry: the first result, nothing stored anew")
    plate: str | None
    state: str | None
    plate_confidence: float | None
    plate_source: str | None
    agreement: str | None = Field(
        default=None, description="recognition's two readers: both agreed, one, none; null when it did not read it"
    )
    image_key: str | None
    crop_key: str | None
    hits: list[dict[str, Any]]
    notice: str | None = None


class BatchItemResult(BaseModel):
    client_read_id: str | None
    status_code: int
    result: ReadResult | None = None
    detail: Any = None


class BatchResult(BaseModel):
    results: list[BatchItemResult]


class StreamEventOut(BaseModel):
    id: int
    kind: str
    created_at: datetime
    unit: str | None
    payload: dict[str, Any]


class StreamPage(BaseModel):
    events: list[StreamEventOut]
    last_id: int


# Internal endpoints (docs/contracts.md).


class Area(CleanInput):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=200_000)


class SearchRequest(CleanInput):
    model_config = ConfigDict(extra="forbid")

    # Empty with an area: every read in the area (access allows it under an area grant).
    plates: list[str] = Field(default_factory=list, max_length=50)
    misread_tolerant: bool = False
    start: AwareDatetime
    end: AwareDatetime
    area: Area | None = None
    agency: str | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = None

    @field_validator("plates")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            pat = plates.normalize(raw)
            if not pat or len(pat) > 8 or not all(ch.isalnum() or ch in "*?" for ch in pat):
                raise ValueError(f"bad plate pattern {raw!r}: letters, digits, * and ? only, at most 8")
            if pat.strip("*?") == "":
                raise ValueError(f"plate pattern {raw!r} needs at least one letter or digit")
            out.append(pat)
        return out

    @model_validator(mode="after")
    def _scope(self) -> SearchRequest:
        if not self.plates and self.area is None:
            raise ValueError("name plates, or give an area to search every plate in it")
        return self


class SearchRead(BaseModel):
    read_id: uuid.UUID
    plate: str | None
    state: str | None
    captured_at: datetime
    lat: float | None  # None: a camera agent's read stored without a position (docs/ingest.md)
    lon: float | None
    unit: str
    camera: str
    agency: str | None
    image_key: str | None
    crop_key: str | None
    classification: str


class SearchResponse(BaseModel):
    reads: list[SearchRead]
    next_cursor: str | None


class HitsIn(CleanInput):
    hits: list[Hit] = Field(max_length=1000)


class HitsAccepted(BaseModel):
    received: int
    delivered: int
    covert_withheld: int = Field(description="covert hits: never sent to a car")
    covert_to_owner: int = Field(description="covert hits queued on the list owner's agency stream")
    duplicates: int
    unknown_reads: list[str]

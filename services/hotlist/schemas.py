"""The hotlist API's request and response shapes (docs/contracts.md for match and version)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.plates import is_plausible, normalize
from shared.text import CleanInput

NOTICE = "A hit alone is not probable cause: confirm the hit before acting."


def _plate(value: str) -> str:
    plate = normalize(value)
    if not is_plausible(plate):
        raise ValueError(f"{value!r} is not a plausible plate (2-8 letters and digits)")
    return plate


class MatchRequest(CleanInput):
    read_id: str = Field(min_length=1, max_length=200)
    plate: str = Field(min_length=1, max_length=20)
    state: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    alternatives: list[str] = Field(default_factory=list, max_length=10)
    agency: str | None = None
    unit: str | None = None
    officer: str | None = Field(default=None, max_length=200, description="the unit's officer (token subject)")
    captured_at: datetime

    _norm_plate = field_validator("plate")(classmethod(lambda cls, v: _plate(v)))

    @field_validator("state")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.upper() if v else None

    @field_validator("alternatives")
    @classmethod
    def _alts(cls, v: list[str]) -> list[str]:
        return [normalize(a) for a in v if normalize(a)]


class MatchBatchRequest(CleanInput):
    reads: list[MatchRequest] = Field(min_length=1, max_length=1000)


class HitOut(BaseModel):
    hit_id: uuid.UUID
    read_id: str
    entry_id: str
    list: str
    list_version: int | None
    category: str
    category_label: str
    concerns: Literal["vehicle", "registered_owner"]
    owner_warning: str | None
    match: Literal["exact", "misread"]
    read_plate: str
    entry_plate: str
    entry_state: str | None
    state_check: Literal["match", "mismatch", "unknown"]
    covert: bool
    list_owner: str | None = None  # the owning agency's ORI (agency lists): where covert hits go
    priority: int
    notice: str = NOTICE


class MatchResponse(BaseModel):
    list_version: int | None
    stale: bool
    hits: list[HitOut]


class MatchBatchResponse(BaseModel):
    results: list[MatchResponse]  # one per read, in the order sent


class VersionOut(BaseModel):
    version: int | None
    loaded_at: datetime | None
    age_s: float | None
    stale: bool
    entries: int


class SyncOut(BaseModel):
    outcome: str
    version: int | None
    entries: int | None
    bad_rows: int
    bad: list[dict[str, int | str]]
    unknown_codes: dict[str, int]
    seconds: float


class DeltaOut(BaseModel):
    since: int
    version: int
    columns: list[str]
    adds: list[list[str | None]]
    removes: list[str]  # NIC numbers: drop these rows before applying the adds


class AgencyListIn(CleanInput):
    name: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    owner: str = Field(min_length=1, max_length=80)
    priority: int = Field(default=0, ge=0, le=100)
    covert: bool = False
    past_read_matching: bool = False  # refused when true: past reads are a search under a grant (access)
    # A covert list serves one case and ends: both required when covert (its entries expire by then at the latest).
    case_number: str | None = Field(default=None, min_length=1, max_length=80)
    expires_at: datetime | None = None

    @field_validator("name")
    @classmethod
    def _not_bca(cls, v: str) -> str:
        if v == "bca":
            raise ValueError("'bca' is the state list's name")
        return v


class AgencyListOut(AgencyListIn):
    id: uuid.UUID
    created_by: str
    created_at: datetime | None


class AgencyEntryIn(CleanInput):
    plate: str = Field(min_length=1, max_length=20)
    state: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    # 13.824: other sources only when they relate to an active criminal investigation.
    case_number: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=3, max_length=2000)
    owner: str = Field(min_length=1, max_length=80)
    expires_at: datetime

    _norm_plate = field_validator("plate")(classmethod(lambda cls, v: _plate(v)))

    @field_validator("state")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.upper() if v else None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("expires_at needs a time zone")
        return v


class AgencyEntryOut(BaseModel):
    id: uuid.UUID
    list: str
    plate: str
    state: str | None
    case_number: str
    reason: str
    owner: str
    expires_at: datetime
    active: bool
    created_by: str
    removed_at: datetime | None


class AgencyEntryAdded(AgencyEntryOut):
    past_read: Literal["not_configured", "matched", "unavailable"]
    past_read_hits: list[HitOut]


class VerificationIn(CleanInput):
    read_accurate: bool
    state_matches: bool


class VerificationOut(BaseModel):
    id: uuid.UUID
    hit_id: uuid.UUID
    read_accurate: bool
    state_matches: bool
    still_current: bool
    checked_version: int | None
    by: str
    at: datetime | None
    confirmed: bool  # all three checks hold


Action = Literal["stop_made", "vehicle_recovered", "arrest", "citation", "no_action", "misread", "not_located", "other"]


class DispositionIn(CleanInput):
    valid: bool
    action: Action
    notes: str | None = Field(default=None, max_length=4000)
    corrects: uuid.UUID | None = None  # a correction names the disposition it corrects


class DispositionOut(BaseModel):
    id: uuid.UUID
    hit_id: uuid.UUID
    valid: bool
    action: str
    notes: str | None
    corrects: uuid.UUID | None
    by: str
    at: datetime | None


class HitDetail(HitOut):
    read_state: str | None
    agency: str | None
    unit: str | None
    captured_at: datetime | None
    created_at: datetime | None
    past_read: bool
    verifications: list[VerificationOut]
    dispositions: list[DispositionOut]


class PendingHits(BaseModel):
    older_than_s: float
    hits: list[HitDetail]


class CarAgencyEntry(BaseModel):
    """An agency-list entry as a car keeps it: enough to alert on and to say why, not the case's file."""

    entry_id: uuid.UUID
    list: str
    priority: int
    plate: str
    state: str | None
    reason: str
    expires_at: datetime
    live: bool  # false: removed or expired since `changed_since`; the car drops it


class CarAgencyEntries(BaseModel):
    as_of: datetime  # pass it back as `changed_since` for the next changes
    entries: list[CarAgencyEntry]

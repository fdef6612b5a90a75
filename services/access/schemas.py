"""API models of the access service (apart from the tables: no table object leaks into a response)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from services.access.scope import location_history_reason, normalize_pattern
from shared.text import CleanInput


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str | None = None


class AreaIn(CleanInput):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=100_000)


def _patterns(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        pattern = normalize_pattern(value)
        if pattern not in out:
            out.append(pattern)
    return out


LegalBasis = Literal["investigation", "agency_request", "court_order"]


class ExigencyIn(CleanInput):
    """The facts an exigency rests on (services/access/exigency.py)."""

    what: str = Field(min_length=10, max_length=4000, description="what happened that could not wait for a warrant")
    when: AwareDatetime = Field(description="when it happened")
    approved_by: str = Field(min_length=2, max_length=200, description="who approved acting without a warrant")


class RequestIn(CleanInput):
    """The ALPR data form: case number, reason, the facts for reasonable suspicion, and what is sought."""

    case_number: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=3, max_length=4000)
    suspicion_basis: str = Field(min_length=3, max_length=8000, description="facts for reasonable suspicion")
    legal_basis: LegalBasis = "investigation"
    plates: list[str] = Field(default_factory=list, max_length=50, description="with `*` and `?` wildcards")
    misread_tolerant: bool = True
    start: AwareDatetime
    end: AwareDatetime
    area: AreaIn | None = None
    warrant_number: str | None = Field(default=None, max_length=64)
    exigency_attestation: str | None = Field(default=None, max_length=4000)
    exigency: ExigencyIn | None = None  # required with an exigency attestation

    @field_validator("plates")
    @classmethod
    def _plates(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @field_validator("warrant_number")
    @classmethod
    def _warrant(cls, value: str | None) -> str | None:
        return _warrant_number(value)

    @field_validator("exigency_attestation")
    @classmethod
    def _exigency(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("a blank exigency attestation attests nothing: leave it out or write it")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> RequestIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.plates and self.area is None:
            raise ValueError("name plates, an area, or both")
        reason = location_history_reason(
            self.plates, self.start, self.end, self.area is not None,
            warrant=self.warrant_number, exigency=self.exigency_attestation,
        )  # fmt: skip
        if reason:
            raise ValueError(reason)
        return self


_WARRANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./:#-]{2,62}[A-Za-z0-9]")


def _warrant_number(value: str | None) -> str | None:
    """A warrant number looks like one: 4-64 letters, digits and separators, at least two digits (not blank)."""
    if value is None:
        return None
    value = value.strip()
    if not _WARRANT.fullmatch(value) or sum(ch.isdigit() for ch in value) < 2:
        raise ValueError(
            "warrant_number does not look like a warrant number (4-64 letters, digits, '-', '/', '.', ':', '#', "
            "at least two digits); leave it out when there is no warrant"
        )
    return value


class VersionOut(BaseModel):
    version: int
    case_number: str
    reason: str
    suspicion_basis: str
    legal_basis: str
    plates: list[str]
    misread_tolerant: bool
    start: datetime
    end: datetime
    area: AreaIn | None
    warrant_number: str | None
    exigency_attestation: str | None
    court_order_sha256: str | None
    court_order_url: str | None = None
    filed_by: str
    filed_at: datetime


class DecisionOut(BaseModel):
    id: uuid.UUID
    version: int
    decision: str
    reason: str
    decided_by: str
    decided_at: datetime


class GrantOut(BaseModel):
    id: uuid.UUID
    request_id: uuid.UUID
    version: int
    holder: str
    data_agency: str | None  # whose reads it opens (the deciding supervisor's agency); null: every agency's
    case_number: str
    plates: list[str]
    misread_tolerant: bool
    start: datetime
    end: datetime
    area: AreaIn | None
    warrant_number: str | None
    exigency_attestation: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None
    active: bool


class RequestSummary(BaseModel):
    id: uuid.UUID
    status: str
    current_version: int
    case_number: str
    requester: str
    requester_agency: str | None
    filed_at: datetime
    updated_at: datetime


class RequestOut(RequestSummary):
    versions: list[VersionOut]
    decisions: list[DecisionOut]
    grants: list[GrantOut]


class DecisionIn(CleanInput):
    version: int = Field(ge=1, description="the version decided on (a newer amendment makes this a conflict)")
    decision: Literal["approve", "deny"]
    reason: str = Field(min_length=3, max_length=4000)
    expires_at: AwareDatetime | None = Field(default=None, description="grant expiry; default per settings")


class RevokeIn(CleanInput):
    reason: str = Field(min_length=3, max_length=4000)


class SearchIn(CleanInput):
    control_checked_later = frozenset({"cursor"})  # refused in the search, so that the refusal is audited
    grant_id: uuid.UUID
    plates: list[str] = Field(default_factory=list, max_length=50)
    misread_tolerant: bool = False
    start: AwareDatetime
    end: AwareDatetime
    area: AreaIn | None = None
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=512)

    @field_validator("plates")
    @classmethod
    def _plates(cls, value: list[str]) -> list[str]:
        return _patterns(value)

    @model_validator(mode="after")
    def _window(self) -> SearchIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ReadOut(BaseModel):
    read_id: str
    plate: str | None  # an area search also finds photos in which no plate was read
    state: str | None
    captured_at: datetime
    lat: float | None
    lon: float | None
    unit: str | None
    camera: str | None
    agency: str | None
    image_url: str | None
    crop_url: str | None


# Told to whoever receives ALPR data (13.824 subd. 4(b); the policy: "Outside agencies who request ALPR data must
# act in compliance with Minnesota Statute 13.824 when handling data"): on every search answer and evidence package.
RECIPIENT_NOTICE = {
    "classification": "private data on individuals (Minn. Stat. 13.82, 13.824 subd. 2), unless marked active "
    "criminal investigative data",
    "statute": "Minn. Stat. 13.824 applies to the recipient: use these data only for the criminal justice purpose "
    "they were released for, destroy them within 60 days unless they are active criminal investigative data, and "
    "log and audit who accesses them (subd. 4(b), 5, 6)",
}


class RecipientNotice(BaseModel):
    classification: str = RECIPIENT_NOTICE["classification"]
    statute: str = RECIPIENT_NOTICE["statute"]


class SearchOut(BaseModel):
    grant_id: uuid.UUID
    case_number: str
    count: int
    reads: list[ReadOut]
    next_cursor: str | None
    links_expire_in: int
    recipient_notice: RecipientNotice = Field(default_factory=RecipientNotice)


class DisclosureIn(CleanInput):
    grant_id: uuid.UUID
    recipient_name: str = Field(min_length=2, max_length=200)
    recipient_ori: str | None = Field(default=None, max_length=16)
    legal_basis: Literal["agency_request", "court_order"]
    purpose: str = Field(min_length=3, max_length=4000)
    read_ids: list[str] = Field(min_length=1, max_length=10_000)


class DisclosureOut(BaseModel):
    id: uuid.UUID
    grant_id: uuid.UUID
    case_number: str
    recipient_name: str
    recipient_ori: str | None
    legal_basis: str
    purpose: str
    record_count: int
    disclosed_by: str
    disclosed_at: datetime


class UserOut(BaseModel):
    id: uuid.UUID
    username: str
    badge: str | None
    full_name: str
    agency: str
    roles: list[str]
    second_factor: bool
    locked_until: datetime | None
    disabled: bool
    trained_until: datetime | None


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    service: str
    actor: str | None
    actor_roles: list[str]
    agency: str | None
    action: str
    object_type: str | None
    object_ids: list[str]
    case_number: str | None
    grant_id: str | None
    source_ip: str | None
    outcome: str
    record_count: int | None
    details: dict[str, Any]
    request_id: str | None
    hash: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_after_seq: int | None


class ChainOut(BaseModel):
    ok: bool
    entries: int
    first_broken_seq: int | None
    reason: str | None
    sealed: int | None = None  # entries under a keyed seal (None: the audit key is not on this host)
    checkpoints: int | None = None  # signed checkpoints found in the object store and checked


class ClientOut(BaseModel):
    client_id: str
    name: str
    roles: list[str]
    ori: str | None
    disabled: bool
    client_secret: str | None = None  # only when just rotated: shown once

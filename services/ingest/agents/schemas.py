"""API models of the camera-agent endpoints."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.bounds import PastDate
from shared.text import CleanInput

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"


class AgentCreate(CleanInput):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID, description="Unique within the agency")
    agency: str | None = Field(default=None, pattern=r"^[A-Z]{2}[A-Z0-9]{7}$", description="ORI; default: yours")
    kind: Literal["fixed", "unit"]
    unit: str | None = Field(default=None, pattern=_ID, description="kind `unit`: the unit it is mounted in")
    lat: float | None = Field(default=None, ge=-90, le=90, description="kind `fixed`: where it stands")
    lon: float | None = Field(default=None, ge=-180, le=180)
    placed_on: PastDate | None = Field(default=None, description="kind `fixed`: when it was put in place")
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _by_kind(self) -> AgentCreate:
        if self.kind == "fixed":
            if self.lat is None or self.lon is None or self.placed_on is None:
                raise ValueError("a fixed reader needs lat, lon and placed_on (the BCA notice and log of use)")
            if self.unit is not None:
                raise ValueError("a fixed reader has no unit")
        elif self.unit is None:
            raise ValueError("a unit-mounted agent needs its unit")
        return self


class AgentOut(BaseModel):
    agent_id: uuid.UUID
    name: str
    agency: str
    kind: str
    unit: str | None
    lat: float | None
    lon: float | None
    placed_on: date | None
    description: str | None
    created_at: datetime
    token_rotated_at: datetime
    disabled_at: datetime | None
    dropped_fields: dict[str, int] = Field(default_factory=dict, description="statute-disallowed fields dropped")


class AgentWithToken(AgentOut):
    token: str = Field(description="Shown once: put it in the agent's upload URL")
    upload_path: str = Field(description="POST here (prefix with this server's address)")


class AgentList(BaseModel):
    agents: list[AgentOut]


class AgentAccepted(BaseModel):
    accepted: bool = True
    id: uuid.UUID = Field(description="The spool record id")


class QuarantinedPost(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID | None
    received_at: datetime
    data_type: str | None
    reason: str
    body: str = Field(description="The post, statute-disallowed fields removed (raw text when not JSON)")


class QuarantineList(BaseModel):
    posts: list[QuarantinedPost]


class ActiveInterval(BaseModel):
    started_at: datetime
    ended_at: datetime


class AgentActivityOut(BaseModel):
    agent_id: uuid.UUID
    intervals: list[ActiveInterval]


class SpoolStatus(BaseModel):
    segments: int
    bytes: int
    appended_here: int
    imported_here: dict[str, int]

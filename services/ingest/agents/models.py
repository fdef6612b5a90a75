"""Tables of the camera-agent intake (schema `ingest`).

An agent's frame key is `<uuid>#<plate_index>`: one plate in one analysed frame. A read may be reached by several
keys (a group and its frames are one read), so `agent_read_keys` maps each key to the read it belongs to.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Float, Index, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel


class Agent(SQLModel, table=True):
    """A registered camera agent: a fixed reader (location, placed date) or one mounted in a unit."""

    __tablename__ = "agents"
    __table_args__ = (
        Index("uq_ingest_agents_token_sha256", "token_sha256", unique=True),
        Index("uq_ingest_agents_agency_name", "agency", "name", unique=True),
        {"schema": "ingest"},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str
    agency: str
    kind: str  # "fixed" | "unit"
    unit: str | None = None  # kind "unit": the unit whose shifts its reads belong to
    lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    placed_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    description: str | None = None
    token_sha256: str  # hex sha256 of the secret token; the token itself is shown once and never stored
    token_rotated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class AgentRead(SQLModel, table=True):
    """What an agent said about a read beyond the read row: its confidence, corners, candidates, the keys it came
    under, whether it is a preview, and the second reading work still to do."""

    __tablename__ = "agent_reads"
    __table_args__ = (
        # The next batch to match, oldest first, without sorting every pending row.
        Index("ix_ingest_agent_reads_finish_at", "captured_at", postgresql_where=text("finish_pending")),
        Index("ix_ingest_agent_reads_captured_at", "captured_at"),
        {"schema": "ingest"},
    )

    read_id: uuid.UUID = Field(primary_key=True)
    captured_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    agent_id: uuid.UUID
    source: str  # "alpr_results" | "alpr_group" | "alpr_alert"
    is_preview: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    agent_plate: str
    agent_confidence: float | None = Field(default=None, sa_column=Column(Float, nullable=True))  # 0-100
    corners: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    candidates: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    keys: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    location_source: str  # "gps" | "fixed" | "mdc" (its unit's MDC) | "none" (stored without a position)
    finish_pending: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AgentReadKey(SQLModel, table=True):
    __tablename__ = "agent_read_keys"
    __table_args__ = (Index("ix_ingest_agent_read_keys_read", "read_id"), {"schema": "ingest"})

    agent_id: uuid.UUID = Field(primary_key=True)
    key: str = Field(primary_key=True)  # "<uuid>#<plate_index>"
    read_id: uuid.UUID
    captured_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AgentActivity(SQLModel, table=True):
    """Intervals during which an agent was collecting (heartbeats and reads): the statute's log of use."""

    __tablename__ = "agent_activity"
    __table_args__ = (Index("ix_ingest_agent_activity_agent_start", "agent_id", "started_at"), {"schema": "ingest"})

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    agent_id: uuid.UUID
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AgentQuarantine(SQLModel, table=True):
    """A post that could not become a read, with the reason; statute-disallowed fields are removed first."""

    __tablename__ = "agent_quarantine"
    __table_args__ = (Index("ix_ingest_agent_quarantine_received", "received_at"), {"schema": "ingest"})

    id: uuid.UUID = Field(primary_key=True)  # the spool record id
    agent_id: uuid.UUID | None = None
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data_type: str | None = None
    reason: str
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # When the post says its plates were captured (ages the body like a read) and the plates it names (a Safe at
    # Home request destroys the body too); unknown for a body that does not parse.
    captured_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    plates: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )


class AgentFieldDrop(SQLModel, table=True):
    """How many times each statute-disallowed field was dropped from an agent's posts."""

    __tablename__ = "agent_field_drops"
    __table_args__ = {"schema": "ingest"}

    agent_id: uuid.UUID = Field(primary_key=True)
    field: str = Field(primary_key=True)
    count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class AgentSpoolOffset(SQLModel, table=True):
    """How far each spool segment has been imported, committed with the imported rows: exactly once."""

    __tablename__ = "agent_spool_offsets"
    __table_args__ = {"schema": "ingest"}

    segment: str = Field(primary_key=True)
    offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )


class AgentLocation(SQLModel, table=True):
    """Where a fixed reader stood from a date: its history, so the BCA register shows every location change (Minn.
    Stat. 13.824 subd. 8). A reader never moved has no row: its location is the one on `agents`."""

    __tablename__ = "agent_locations"
    __table_args__ = (Index("ix_ingest_agent_locations_agent", "agent_id", "placed_on"), {"schema": "ingest"})

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    agent_id: uuid.UUID
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))
    placed_on: date = Field(sa_column=Column(Date, nullable=False))
    description: str | None = None
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

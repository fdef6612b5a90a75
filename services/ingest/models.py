"""Tables of the ingest service (schema `ingest`).

`reads` is partitioned by capture day (RANGE on `captured_at`, one partition per UTC day, created on demand) so the
retention purge drops whole partitions; its primary and unique keys therefore include `captured_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Float, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel


class Shift(SQLModel, table=True):
    """An officer's shift in a unit: while it is open (not ended, not expired) the unit is online."""

    __tablename__ = "shifts"
    __table_args__ = (
        Index("ix_ingest_shifts_unit_started_at", "unit", "started_at"),
        # Unit names are unique per agency, not globally: one open shift per (agency, unit).
        Index(
            "uq_ingest_shifts_open_unit",
            "agency",
            "unit",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
            postgresql_nulls_not_distinct=True,
        ),
        {"schema": "ingest"},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    unit: str
    agency: str | None = None
    badge: str
    officer: str  # token subject
    cameras: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    end_reason: str | None = None  # "logout" | "expired"


class UnitPosition(SQLModel, table=True):
    """A unit's latest positions posted by its MDC without a read (services/ingest/positions.py): kept for
    `ingest_unit_position_keep_s` only, for its camera agents' reads without GPS. Not a track."""

    __tablename__ = "unit_positions"
    __table_args__ = (Index("ix_ingest_unit_positions_at", "at"), {"schema": "ingest"})

    agency: str = Field(sa_column=Column(Text, primary_key=True))  # '' for a token without agency, as reads
    unit: str = Field(sa_column=Column(Text, primary_key=True))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    lat: float = Field(sa_column=Column(Float, nullable=False))
    lon: float = Field(sa_column=Column(Float, nullable=False))


class Read(SQLModel, table=True):
    """One plate read: only what Minn. Stat. 13.824 subd. 2(a) lets us keep, plus where it came from."""

    __tablename__ = "reads"
    __table_args__ = (
        Index("uq_ingest_reads_client_key", "agency", "unit", "client_read_id", "captured_at", unique=True),
        Index("ix_ingest_reads_plate", "plate", "captured_at", postgresql_ops={"plate": "text_pattern_ops"}),
        Index(
            "ix_ingest_reads_confusion_key",
            "confusion_key",
            "captured_at",
            postgresql_ops={"confusion_key": "text_pattern_ops"},
        ),
        Index("ix_ingest_reads_captured_at", "captured_at"),
        Index(
            "ix_ingest_reads_pending",
            "received_at",
            postgresql_where=text("recognition_pending OR match_pending"),
        ),
        {"schema": "ingest", "postgresql_partition_by": "RANGE (captured_at)"},
    )

    id: uuid.UUID = Field(primary_key=True)
    captured_at: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    agency: str = ""  # "" rather than NULL: it is part of the idempotency key
    unit: str
    shift_id: uuid.UUID | None = None
    camera: str
    client_read_id: str
    # NULL: a camera agent's read with no GPS, no fixed place and no MDC position near it (docs/ingest.md).
    lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    heading: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    speed: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    plate: str | None = None  # normalized (shared.plates.normalize)
    confusion_key: str | None = None  # shared.plates.confusion_key(plate): misread-tolerant search
    plate_confidence: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    state: str | None = None
    plate_source: str | None = None  # "car" | "recognition"
    car_plate: str | None = None  # the car's own reading, kept beside ours when recognition ran as a second read
    # Recognition's two readers on the stored reading: "both" agreed, "one", "none" (docs/recognition-27.md); NULL
    # when recognition did not read it.
    agreement: str | None = None
    image_key: str | None = None
    crop_key: str | None = None
    recognition_pending: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    match_pending: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    last_error: str | None = None
    list_version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    hits: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    # Minn. Stat. 13.82/13.824: private unless a case makes it active investigative (or public); set by holds.
    classification: str = Field(default="private", sa_column=Column(Text, nullable=False, server_default="private"))


class StreamEvent(SQLModel, table=True):
    """What a car's stream carries: hits for its unit, and hot-list update notices (unit NULL: every car)."""

    __tablename__ = "stream_events"
    __table_args__ = (
        Index("ix_ingest_stream_events_unit_id", "unit", "id"),
        Index("uq_ingest_stream_events_dedupe", "dedupe_key", unique=True),
        {"schema": "ingest"},
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    kind: str  # "hit" | "hotlist_update"
    unit: str | None = None
    agency: str | None = None
    read_id: uuid.UUID | None = None
    captured_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    dedupe_key: str  # a hit or a list version is announced once
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))

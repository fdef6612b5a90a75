"""Retention tables of the ingest service: investigation holds on reads, and the purge's destruction records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Hold(SQLModel, table=True):
    """Reads kept past the retention period for a case (or a data subject's exculpatory-evidence request)."""

    __tablename__ = "holds"
    __table_args__ = (Index("ix_ingest_holds_case_number", "case_number"), {"schema": "ingest"})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the custodian
    kind: str  # "investigation" | "exculpatory" (Minn. Stat. 13.824 subd. 3(b): a subject's written request)
    case_number: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    classification: str = "private"  # private | public | active_investigative
    placed_by: str
    placed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    released_by: str | None = None
    release_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class HoldRead(SQLModel, table=True):
    """One read under a hold, with its objects: the purge spares these keys when it empties the day's prefix."""

    __tablename__ = "hold_reads"
    __table_args__ = (Index("ix_ingest_hold_reads_captured_at", "captured_at"), {"schema": "ingest"})

    hold_id: uuid.UUID = Field(foreign_key="ingest.holds.id", primary_key=True)
    read_id: uuid.UUID = Field(primary_key=True)
    captured_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    image_key: str | None = None
    crop_key: str | None = None


class PurgeRun(SQLModel, table=True):
    """A destruction record: what one purge destroyed and kept, who ran it. Updated as each day is committed, so
    an interrupted run's record says what it did."""

    __tablename__ = "purge_runs"
    __table_args__ = {"schema": "ingest"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    trigger: str  # schedule | cli | api
    actor: str
    dry_run: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    status: str = "running"  # running | finished | failed
    retention_days: int
    cutoff: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))  # captured before: gone
    first_day: str | None = None
    last_day: str | None = None
    reads_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    objects_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    stream_events_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    partitions_dropped: int = 0
    reads_kept_held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    objects_kept_held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Photos no read refers to, older than the grace (issue 29): counted apart from the retention's objects.
    orphans_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ProtectedPlate(SQLModel, table=True):
    """A Safe at Home participant's plate (Minn. Stat. 13.824 subd. 3(c), chapter 5B): its reads are destroyed at
    once and, from then on, by every purge run. Private data: never in a report, log or audit entry."""

    __tablename__ = "protected_plates"
    __table_args__ = (
        Index("uq_ingest_protected_plates_agency_plate", "agency", "plate", unique=True),
        Index("ix_ingest_protected_plates_plate", "plate"),  # the read path asks by plate for every agency at once
        {"schema": "ingest"},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # who recorded it
    plate: str
    # Two-person rule: a plate on a hot list or under a hold waits for a second supervisor before it is protected.
    pending: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))
    confirmed_by: str | None = None
    request_reference: str
    received_on: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


# The reads an active hold keeps (a case's, or a data subject's preservation request): SQL for `IN (...)`.
ACTIVE_HELD_READS = (
    "SELECT hr.read_id FROM ingest.hold_reads hr JOIN ingest.holds h ON h.id = hr.hold_id WHERE h.released_at IS NULL"
)


class SubjectRequest(SQLModel, table=True):
    """A data subject's written request to preserve possibly exculpatory data (Minn. Stat. 13.824 subd. 3(b)),
    kept with the exculpatory hold it placed: who asked, the request document, the case and the charge it
    concerns, and when it is reviewed (the hold ends when the charge is resolved)."""

    __tablename__ = "subject_requests"
    __table_args__ = (Index("ix_ingest_subject_requests_hold_id", "hold_id"), {"schema": "ingest"})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hold_id: uuid.UUID = Field(foreign_key="ingest.holds.id")
    requester: str  # the data subject (or counsel) who asked
    case_number: str
    charge: str = Field(sa_column=Column(Text, nullable=False))
    received_on: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    review_on: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    document_key: str
    document_sha256: str
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class HoldReview(SQLModel, table=True):
    """A supervisor's review of a hold (13.824 subd. 3(d): inactive investigative data follow the 138.17 schedule):
    kept, with the next review date; a hold no longer needed is released (with its reason) instead."""

    __tablename__ = "hold_reviews"
    __table_args__ = (Index("ix_ingest_hold_reviews_hold_id", "hold_id"), {"schema": "ingest"})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hold_id: uuid.UUID = Field(foreign_key="ingest.holds.id")
    reviewed_by: str
    reviewed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    next_review_on: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

"""The hotlist service's tables (schema `hotlist`).

The BCA rows live in `bca_entries`, partitioned by list version: each load COPYs into a fresh partition, indexes it
and switches `list_versions.is_current` in the same transaction; old versions are dropped as whole partitions.
Hits, verifications and dispositions are append-only: a correction is a new disposition naming the one it corrects.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Computed, DateTime, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SCHEMA = "hotlist"


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable, server_default=func.now(), index=index),
    )


class ListVersion(SQLModel, table=True):
    __tablename__ = "list_versions"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    loaded_at: datetime | None = _ts()
    verified_at: datetime | None = _ts()  # last time the source confirmed this list (load, 304, same body)
    is_current: bool = Field(default=False)
    entries: int = 0
    bad_rows: int = 0
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    dropped: bool = Field(default=False)  # its rows are gone (older than the versions kept)


class BcaEntry(SQLModel, table=True):
    """Parent of the per-version partitions (created by the migration with PARTITION BY LIST)."""

    __tablename__ = "bca_entries"
    __table_args__ = {"schema": SCHEMA}

    version_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    nic: str = Field(primary_key=True)
    code: str = Field(sa_column=Column(String, Computed("left(nic, 1)", persisted=True)))  # the file code
    ori: str
    entry_date: date
    plate: str
    state: str
    plate_year: str | None = None
    plate_type: str | None = None
    vehicle_year: str | None = None
    make: str | None = None
    model: str | None = None
    style: str | None = None
    color: str | None = None


class SyncRun(SQLModel, table=True):
    __tablename__ = "sync_runs"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    started_at: datetime
    finished_at: datetime | None = _ts(index=True)
    trigger: str  # schedule | cli | api
    outcome: str  # loaded | unchanged | rejected | failed
    version_id: int | None = None
    entries: int | None = None
    bad_rows: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class AgencyList(SQLModel, table=True):
    __tablename__ = "agency_lists"
    # A list's name is unique within its agency: two agencies may each have a "stolen-local".
    __table_args__ = (UniqueConstraint("agency", "name", name="uq_agency_lists_agency_name"), {"schema": SCHEMA})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the custodian
    name: str
    owner: str  # the owning agency's ORI or unit: covert hits go there
    priority: int = 0
    covert: bool = False
    past_read_matching: bool = False  # no longer honoured: past reads are a search under a grant (access)
    case_number: str | None = None  # covert lists: the case they serve
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_by: str
    created_at: datetime | None = _ts()
    changed_at: datetime | None = _ts()


class AgencyEntry(SQLModel, table=True):
    __tablename__ = "agency_entries"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    list_id: uuid.UUID = Field(foreign_key="hotlist.agency_lists.id", index=True)
    plate: str = Field(index=True)
    state: str | None = None
    case_number: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    owner: str  # the investigator responsible
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_by: str
    created_at: datetime | None = _ts()
    removed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    removed_by: str | None = None
    changed_at: datetime | None = _ts()


class Hit(SQLModel, table=True):
    __tablename__ = "hits"
    __table_args__ = (
        UniqueConstraint("read_id", "list_name", "entry_id", name="uq_hits_read_id"),
        {"schema": SCHEMA},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    read_id: str
    entry_id: str  # NIC number for the BCA list, the entry's id for an agency list
    list_name: str  # "bca" or the agency list's name
    list_version: int | None = None
    category: str
    category_label: str
    concerns: str  # vehicle | registered_owner
    match: str  # exact | misread
    read_plate: str
    read_state: str | None = None
    entry_plate: str
    entry_state: str | None = None
    state_check: str  # match | mismatch | unknown
    covert: bool = False
    priority: int = 0
    list_owner: str | None = None
    past_read: bool = False
    agency: str | None = None
    # The agency whose record this is: the read's agency, or for a covert hit the list owner's (only it sees it).
    custodian: str = Field(default="", sa_column=Column(Text, nullable=False, server_default="", index=True))
    unit: str | None = None
    officer: str | None = None  # the unit's officer when the read was taken (token subject): the hit opens for them
    captured_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime | None = _ts(index=True)


class HitVerification(SQLModel, table=True):
    __tablename__ = "hit_verifications"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hit_id: uuid.UUID = Field(foreign_key="hotlist.hits.id", index=True)
    read_accurate: bool
    state_matches: bool
    still_current: bool  # answered by the service, not the officer
    checked_version: int | None = None
    by: str
    at: datetime | None = _ts()


class HitDisposition(SQLModel, table=True):
    __tablename__ = "hit_dispositions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hit_id: uuid.UUID = Field(foreign_key="hotlist.hits.id", index=True)
    valid: bool
    action: str
    notes: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    corrects: uuid.UUID | None = Field(default=None, foreign_key="hotlist.hit_dispositions.id", unique=True)
    by: str
    at: datetime | None = _ts()

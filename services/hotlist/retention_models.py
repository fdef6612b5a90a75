"""Retention tables of the hotlist service: holds on hits, and the hit purge's destruction records."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Text
from sqlmodel import Field, SQLModel


class HitHold(SQLModel, table=True):
    __tablename__ = "hit_holds"
    __table_args__ = {"schema": "hotlist"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the custodian
    kind: str  # investigation | exculpatory
    case_number: str = Field(index=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    classification: str = "active_investigative"
    placed_by: str
    placed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    released_by: str | None = None
    release_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class HitHoldItem(SQLModel, table=True):
    __tablename__ = "hit_hold_items"
    __table_args__ = {"schema": "hotlist"}

    hold_id: uuid.UUID = Field(foreign_key="hotlist.hit_holds.id", primary_key=True)
    hit_id: uuid.UUID = Field(primary_key=True)  # no foreign key: the record of the hold outlives the hit


class HitPurgeRun(SQLModel, table=True):
    __tablename__ = "purge_runs"
    __table_args__ = {"schema": "hotlist"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    started_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    trigger: str
    actor: str
    status: str = "finished"
    retention_days: int
    cutoff: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    hits_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    verifications_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    dispositions_destroyed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    hits_kept_held: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))

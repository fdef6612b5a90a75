"""Daily facts of the log of use (Minn. Stat. 13.824 subd. 5, 6): what the reports count, kept per agency, unit or
fixed reader, shift and day, written before the purge destroys the day's reads. The purge never touches these
tables: they hold counts, never a plate, a position or a photo."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Date, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class ReadFact(SQLModel, table=True):
    """Reads of one day by one agency's unit (and shift), or by one fixed reader ("agent:<id>")."""

    __tablename__ = "read_facts"
    __table_args__ = {"schema": "ingest"}

    day: date = Field(sa_column=Column(Date, primary_key=True))
    agency: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    reader: str = Field(primary_key=True)  # "unit:<unit>" for a car, "agent:<id>" for a camera agent
    shift_id: str = Field(primary_key=True)  # "" when no shift (fixed readers)
    reads: int = Field(sa_column=Column(Integer, nullable=False))
    distinct_plates: int = Field(sa_column=Column(Integer, nullable=False))  # in the day
    reads_no_plate: int = Field(sa_column=Column(Integer, nullable=False))
    # Minn. Stat. 13.82/13.824 subd. 2(b): reads by classification when the day was written (private unless a case
    # made them active investigative, or public).
    classification: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class ReadFactDay(SQLModel, table=True):
    """A day whose facts are written; sealed once the purge wrote them just before destroying the day (the rows
    left afterwards are only the held ones, so a sealed day is never counted again)."""

    __tablename__ = "read_fact_days"
    __table_args__ = {"schema": "ingest"}

    day: date = Field(sa_column=Column(Date, primary_key=True))
    written_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sealed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))

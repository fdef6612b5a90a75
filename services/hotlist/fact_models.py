"""Daily facts of hits (Minn. Stat. 13.824 subd. 5(a)(3), 6): hits by agency, unit, category and list, and their
dispositions by outcome, written before the purge destroys the day's hits. The purge never touches these tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Date, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class HitFact(SQLModel, table=True):
    __tablename__ = "hit_facts"
    __table_args__ = {"schema": "hotlist"}

    day: date = Field(sa_column=Column(Date, primary_key=True))
    agency: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    list_name: str = Field(primary_key=True)
    covert: bool = Field(sa_column=Column(Boolean, nullable=False))  # never in the public log of use
    hits: int = Field(sa_column=Column(Integer, nullable=False))
    outcomes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))  # "valid:arrest": n


class HitFactDay(SQLModel, table=True):
    __tablename__ = "hit_fact_days"
    __table_args__ = {"schema": "hotlist"}

    day: date = Field(sa_column=Column(Date, primary_key=True))
    written_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    sealed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))

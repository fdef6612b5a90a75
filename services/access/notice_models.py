"""Notices sent to the BCA (Minn. Stat. 13.824 subd. 8), schema `access`: who recorded that a notice went, when, to
whom and how, covering which register items (a reader's first use, a fixed location's change)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, Date, DateTime, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel


class BcaNotice(SQLModel, table=True):
    __tablename__ = "bca_notices"
    __table_args__ = {"schema": "access"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    sent_on: date = Field(sa_column=Column(Date, nullable=False))
    recipient: str  # to whom at the BCA
    method: str  # how: e-mail, letter, portal
    items: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))  # register item keys
    readers: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))  # reader ids those items name
    note: str | None = None
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

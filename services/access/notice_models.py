"""Notices sent to the BCA (Minn. Stat. 13.824 subd. 8), schema `access`: who recorded that a notice went, when, to
whom and how, covering which register items (a reader's first use, a fixed location's change)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Date, DateTime, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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


class BreachNotice(SQLModel, table=True):
    """A breach of the security of the data (Minn. Stat. 13.055): what, when it happened and was discovered, and
    each notification made (who, how, when). One agency's record: the recording supervisor's (its investigation
    report names what happened to that agency's data)."""

    __tablename__ = "breach_notices"
    __table_args__ = {"schema": "access"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the custodian
    what: str = Field(sa_column=Column(Text, nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    discovered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    records_affected: int | None = None
    unauthorized_by_employee: bool = False
    notified: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    investigation_report: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # The statute's clocks (services/access/breach_duties.py): how many individuals (over 1,000: the consumer
    # reporting agencies are told too, subd. 5), each law-enforcement delay (subd. 3: the notice waits while it is in
    # force), when the investigation ended (subd. 2(b): the report is due then) and when the report was entered.
    individuals_affected: int | None = None
    law_enforcement_delays: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    )
    investigation_completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    report_recorded_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # For an employee's unauthorized access, what the report must say (subd. 2(b)): the type of data, each responsible
    # employee, the final disposition (with the number of individuals, `individuals_affected`).
    report_details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))


class SecurityAssessment(SQLModel, table=True):
    """A comprehensive security assessment of the agency's personal data (13.055 subd. 6: at least annually)."""

    __tablename__ = "security_assessments"
    __table_args__ = {"schema": "access"}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(sa_column=Column(Text, nullable=False))
    performed_on: date = Field(sa_column=Column(Date, nullable=False))
    performed_by: str = Field(sa_column=Column(Text, nullable=False))
    summary: str = Field(sa_column=Column(Text, nullable=False))
    recorded_by: str
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))

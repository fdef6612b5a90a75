"""Suspensions of an agency's collection (Minn. Stat. 13.824 subd. 6(b)): on the commissioner's order the agency
stops collecting until the order is lifted. One row per order, kept after it is lifted (the reports name it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from shared.errors import Forbidden

_IN_FORCE = "SELECT agency, order_reference, suspended_at FROM ingest.suspensions WHERE lifted_at IS NULL"
SUSPENDED_AGENCIES = "SELECT agency FROM ingest.suspensions WHERE lifted_at IS NULL"


class Suspension(SQLModel, table=True):
    __tablename__ = "suspensions"
    __table_args__ = (
        # At most one suspension in force per agency.
        Index("uq_ingest_suspensions_active", "agency", unique=True, postgresql_where=text("lifted_at IS NULL")),
        {"schema": "ingest"},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agency: str = Field(sa_column=Column(Text, nullable=False))
    order_reference: str = Field(sa_column=Column(Text, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    suspended_by: str = Field(sa_column=Column(Text, nullable=False))
    suspended_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    lifted_by: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lifted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    lift_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


def refusal(agency: str, order_reference: str, since: datetime) -> Forbidden:
    return Forbidden(
        f"collection by agency {agency or '(none)'} is suspended since {since.isoformat()} "
        f"(order {order_reference}, Minn. Stat. 13.824 subd. 6(b)): no read is accepted until it is lifted"
    )


async def in_force(engine: AsyncEngine, agency: str | None = None) -> dict[str, tuple[str, datetime]]:
    """Agencies suspended now: {agency: (order, since)}; `agency`: that one only (asked on the rare paths: a shift
    start, a read finding no open shift, the agents' registry refresh; never per read)."""
    sql = _IN_FORCE + ("" if agency is None else " AND agency = :a")
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), {"a": agency or ""})).all()
    return {r[0]: (r[1], r[2]) for r in rows}


async def refuse_if_suspended(engine: AsyncEngine, agency: str | None) -> None:
    found = await in_force(engine, agency or "")
    if found:
        order, since = found[agency or ""]
        raise refusal(agency or "", order, since)

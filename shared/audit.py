"""The audit log (Minn. Stat. 13.824 subd. 7): append-only, hash-chained, written by every service.

The database does the chaining: a BEFORE INSERT trigger takes a transaction lock, numbers the entry (`seq`) and
hashes it with the previous entry's hash; UPDATE and DELETE are refused by another trigger. `verify_chain`
recomputes every hash and names the first broken link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import BigInteger, Column, DateTime, Index, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import Field, SQLModel

from shared.auth import Principal
from shared.logs import audit_request_id
from shared.text import strip_control, without_control


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (
        # The entries naming a record: a read's inclusion proof (shared/merkle.py) and its evidence package.
        Index("ix_audit_audit_log_object_ids", "object_ids", postgresql_using="gin"),
        {"schema": "audit"},
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    service: str
    actor: str | None = None  # token subject, or the job's name
    actor_roles: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    agency: str | None = None
    action: str = Field(index=True)  # e.g. "auth.login", "reads.search", "image.view"
    object_type: str | None = None
    object_ids: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(Text), nullable=False))
    case_number: str | None = Field(default=None, index=True)
    grant_id: str | None = None
    source_ip: str | None = None
    outcome: str = "ok"  # ok | denied | failed
    record_count: int | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    request_id: str | None = None
    prev_hash: str | None = None
    hash: str | None = None


class AuditSeal(SQLModel, table=True):
    """The keyed link of one entry: HMAC(key, previous mac + entry hash), written by the sealer that holds the key.

    The database never holds the key, so an insider who rewrites entries and rehashes the plain chain cannot make
    the seals agree."""

    __tablename__ = "seals"
    __table_args__ = {"schema": "audit"}

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    mac: str
    sealed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


def client_ip(request: Request) -> str | None:
    """Where a request came from, for the audit entry's `source_ip`."""
    return request.client.host if request.client else None


async def record(
    session: AsyncSession,
    *,
    service: str,
    action: str,
    principal: Principal | None = None,
    actor: str | None = None,
    agency: str | None = None,
    object_type: str | None = None,
    object_ids: list[str] | None = None,
    case_number: str | None = None,
    grant_id: str | None = None,
    source_ip: str | None = None,
    outcome: str = "ok",
    record_count: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction: it commits (or not) with the work it describes."""
    # A refused request is audited whatever it held: PostgreSQL cannot store a NUL, so controls are taken out.
    details = without_control(dict(details or {}))
    request_id, claimed = audit_request_id()
    if claimed:
        details.setdefault("claimed_request_id", claimed)
    if principal is not None and principal.token_id:
        # Which token was used: ties each use of read data to one authentication.
        details.setdefault("token_id", principal.token_id)
        if principal.session_id:
            details.setdefault("session_id", principal.session_id)
    entry = AuditEntry(
        service=service,
        action=action,
        actor=principal.subject if principal else actor,
        actor_roles=sorted(principal.roles) if principal else [],
        agency=principal.agency if principal else agency,  # `agency`: a host command's (no principal)
        object_type=object_type,
        object_ids=[strip_control(str(o)) for o in object_ids or []],
        case_number=strip_control(case_number) if case_number else case_number,
        grant_id=grant_id,
        source_ip=source_ip,
        outcome=outcome,
        record_count=record_count,
        details=details,
        request_id=request_id,
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken_seq is None


async def verify_chain(conn: AsyncConnection | AsyncSession) -> ChainReport:
    """Walk the chain in `seq` order; stop at the first entry whose hash or link does not hold."""
    result = await conn.execute(
        text(
            "SELECT seq, prev_hash, hash, audit.entry_hash(a) AS expected, "
            "lag(hash) OVER (ORDER BY seq) AS previous FROM audit.audit_log a ORDER BY seq"
        )
    )
    count = 0
    expected_seq = 1
    for row in result:
        count += 1
        if row.seq != expected_seq:
            return ChainReport(count, expected_seq, f"entry {expected_seq} is missing")
        if (row.previous or None) != (row.prev_hash or None):
            return ChainReport(count, row.seq, "link to the previous entry is broken")
        if row.hash != row.expected:
            return ChainReport(count, row.seq, "entry content does not match its hash")
        expected_seq += 1
    return ChainReport(count, None, None)

"""Tables of the access service (schema `access`): people, clients, sessions, requests, decisions, grants."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Float, Identity, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

SCHEMA = "access"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class User(SQLModel, table=True):
    """A person: officer, supervisor, auditor or administrator, of one agency (its ORI)."""

    __tablename__ = "users"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    username: str = Field(unique=True)
    badge: str | None = Field(default=None, unique=True)
    full_name: str
    agency: str  # ORI
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    password_hash: str
    totp_secret: str | None = None
    totp_last_step: int | None = None  # the last accepted TOTP time step: a code works once
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=_ts())
    unlocked_at: datetime | None = Field(default=None, sa_column=_ts())  # an admin lifted its log-in throttle
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class TrainingRecord(SQLModel, table=True):
    __tablename__ = "training_records"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="access.users.id", index=True)
    course: str
    completed_on: date
    expires_on: date
    recorded_by: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Client(SQLModel, table=True):
    """An API client: an outside agency (role `agency`) or one of our services (role `service`)."""

    __tablename__ = "clients"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(unique=True)
    secret_hash: str
    name: str
    agency_name: str | None = None
    ori: str | None = None
    roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class LoginSession(SQLModel, table=True):
    """A person's session: the `sid` claim. Ends on logout, refresh-token reuse, 30 idle minutes or its maximum."""

    __tablename__ = "sessions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="access.users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_ts())
    end_reason: str | None = None
    source_ip: str | None = None


class Revocation(SQLModel, table=True):
    """What access publishes when tokens must stop working before they expire; every service reads it.

    kind `session`: tokens of that login session (`sid`); `token`: one token (`jti`); `subject`: every token of
    that user or client issued before `revoked_at` (disable, lock, password change, secret rotation)."""

    __tablename__ = "revocations"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: str
    value: str
    reason: str
    revoked_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True, server_default=func.now()),
    )


class RefreshToken(SQLModel, table=True):
    """One refresh token of a session (its family). Stored as a SHA-256: the token itself is 256 random bits."""

    __tablename__ = "refresh_tokens"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="access.sessions.id", index=True)
    token_hash: str = Field(unique=True)
    issued_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    spent_at: datetime | None = Field(default=None, sa_column=_ts())


class AccessRequest(SQLModel, table=True):
    """An ALPR data form. Its content lives in versions (never edited); this row carries the state."""

    __tablename__ = "requests"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    requester: str = Field(index=True)  # token subject
    requester_roles: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    requester_agency: str | None = None
    status: str = Field(default="pending", index=True)  # pending | approved | denied
    current_version: int = 1
    filed_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class RequestVersion(SQLModel, table=True):
    """A request as filed (version 1) or amended (2, 3, ...). The database refuses UPDATE and DELETE."""

    __tablename__ = "request_versions"
    __table_args__ = (UniqueConstraint("request_id", "version"), {"schema": SCHEMA})

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    request_id: uuid.UUID = Field(foreign_key="access.requests.id", index=True)
    version: int
    case_number: str
    reason: str
    suspicion_basis: str
    legal_basis: str  # investigation | agency_request | court_order
    plates: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    misread_tolerant: bool = True
    start: datetime = Field(sa_column=_ts(nullable=False))
    end: datetime = Field(sa_column=_ts(nullable=False))
    area_lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    area_lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    area_radius_m: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    warrant_number: str | None = None
    exigency_attestation: str | None = None
    court_order_key: str | None = None
    court_order_sha256: str | None = None
    court_order_content_type: str | None = None
    filed_by: str
    filed_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Decision(SQLModel, table=True):
    """A supervisor's approval or denial of one version, with the written reason. Never edited."""

    __tablename__ = "decisions"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    request_id: uuid.UUID = Field(foreign_key="access.requests.id", index=True)
    version: int
    decision: str  # approve | deny
    reason: str
    decided_by: str
    decided_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Grant(SQLModel, table=True):
    """What an approval allows: the approved version's scope, for its holder, until it expires or is revoked."""

    __tablename__ = "grants"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    request_id: uuid.UUID = Field(foreign_key="access.requests.id", index=True)
    version: int
    decision_id: uuid.UUID = Field(foreign_key="access.decisions.id")
    holder: str = Field(index=True)
    holder_agency: str | None = None
    # The ORI whose reads the grant opens: the deciding supervisor's agency, the custodian of that data. A
    # supervisor can open only their own agency's reads, to anyone; null on grants older than this rule.
    data_agency: str | None = None
    case_number: str
    plates: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    misread_tolerant: bool = True
    start: datetime = Field(sa_column=_ts(nullable=False))
    end: datetime = Field(sa_column=_ts(nullable=False))
    area_lat: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    area_lon: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    area_radius_m: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    warrant_number: str | None = None
    exigency_attestation: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts())
    revoked_by: str | None = None
    revoke_reason: str | None = None


class Disclosure(SQLModel, table=True):
    """ALPR data given to another agency or party (13.824 subd. 7): who got what, under which grant, why."""

    __tablename__ = "disclosures"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    grant_id: uuid.UUID = Field(foreign_key="access.grants.id", index=True)
    agency: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # the disclosing one
    case_number: str
    recipient_name: str
    recipient_ori: str | None = None
    legal_basis: str
    purpose: str
    read_ids: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    record_count: int
    disclosed_by: str
    disclosed_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class RateHit(SQLModel, table=True):
    """One counted hit of a moving-window limit shared by the access replicas (services/access/windows.py)."""

    __tablename__ = "rate_hits"
    __table_args__ = (Index("ix_rate_hits_key_at", "key", "at"), {"schema": SCHEMA})

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    key: str
    at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()"))
    )

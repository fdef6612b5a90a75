"""Access service: people, clients, sessions, refresh tokens, requests (versioned), decisions, grants, disclosures.

Request versions and decisions are records of what was filed and decided: the database refuses to change them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("agency_name", sa.String(), nullable=True),
        sa.Column("ori", sa.String(), nullable=True),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
        schema="access",
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("requester_roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("requester_agency", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(op.f("ix_access_requests_requester"), "requests", ["requester"], unique=False, schema="access")
    op.create_index(op.f("ix_access_requests_status"), "requests", ["status"], unique=False, schema="access")
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("badge", sa.String(), nullable=True),
        sa.Column("full_name", sa.String(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("totp_secret", sa.String(), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("badge"),
        sa.UniqueConstraint("username"),
        schema="access",
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access.requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(op.f("ix_access_decisions_request_id"), "decisions", ["request_id"], unique=False, schema="access")
    op.create_table(
        "request_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("suspicion_basis", sa.String(), nullable=False),
        sa.Column("legal_basis", sa.String(), nullable=False),
        sa.Column("plates", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("misread_tolerant", sa.Boolean(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("area_lat", sa.Float(), nullable=True),
        sa.Column("area_lon", sa.Float(), nullable=True),
        sa.Column("area_radius_m", sa.Float(), nullable=True),
        sa.Column("warrant_number", sa.String(), nullable=True),
        sa.Column("exigency_attestation", sa.String(), nullable=True),
        sa.Column("court_order_key", sa.String(), nullable=True),
        sa.Column("court_order_sha256", sa.String(), nullable=True),
        sa.Column("court_order_content_type", sa.String(), nullable=True),
        sa.Column("filed_by", sa.String(), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access.requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "version"),
        schema="access",
    )
    op.create_index(
        op.f("ix_access_request_versions_request_id"), "request_versions", ["request_id"], unique=False, schema="access"
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(), nullable=True),
        sa.Column("source_ip", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["access.users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(op.f("ix_access_sessions_user_id"), "sessions", ["user_id"], unique=False, schema="access")
    op.create_table(
        "training_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("course", sa.String(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["access.users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(
        op.f("ix_access_training_records_user_id"), "training_records", ["user_id"], unique=False, schema="access"
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("holder_agency", sa.String(), nullable=True),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("plates", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("misread_tolerant", sa.Boolean(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("area_lat", sa.Float(), nullable=True),
        sa.Column("area_lon", sa.Float(), nullable=True),
        sa.Column("area_radius_m", sa.Float(), nullable=True),
        sa.Column("warrant_number", sa.String(), nullable=True),
        sa.Column("exigency_attestation", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(), nullable=True),
        sa.Column("revoke_reason", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["access.decisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access.requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(op.f("ix_access_grants_holder"), "grants", ["holder"], unique=False, schema="access")
    op.create_index(op.f("ix_access_grants_request_id"), "grants", ["request_id"], unique=False, schema="access")
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["access.sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        schema="access",
    )
    op.create_index(
        op.f("ix_access_refresh_tokens_session_id"), "refresh_tokens", ["session_id"], unique=False, schema="access"
    )
    op.create_table(
        "disclosures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("recipient_name", sa.String(), nullable=False),
        sa.Column("recipient_ori", sa.String(), nullable=True),
        sa.Column("legal_basis", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("read_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("disclosed_by", sa.String(), nullable=False),
        sa.Column("disclosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["access.grants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="access",
    )
    op.create_index(op.f("ix_access_disclosures_grant_id"), "disclosures", ["grant_id"], unique=False, schema="access")
    # Filed versions and decisions are never edited: amendments are new versions.
    op.execute(
        """
        CREATE FUNCTION access.refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is a record as filed: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in ("request_versions", "decisions"):
        op.execute(
            f"CREATE TRIGGER {table}_as_filed BEFORE UPDATE OR DELETE ON access.{table} "
            "FOR EACH ROW EXECUTE FUNCTION access.refuse_change()"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_access_disclosures_grant_id"), table_name="disclosures", schema="access")
    op.drop_table("disclosures", schema="access")
    op.drop_index(op.f("ix_access_refresh_tokens_session_id"), table_name="refresh_tokens", schema="access")
    op.drop_table("refresh_tokens", schema="access")
    op.drop_index(op.f("ix_access_grants_request_id"), table_name="grants", schema="access")
    op.drop_index(op.f("ix_access_grants_holder"), table_name="grants", schema="access")
    op.drop_table("grants", schema="access")
    op.drop_index(op.f("ix_access_training_records_user_id"), table_name="training_records", schema="access")
    op.drop_table("training_records", schema="access")
    op.drop_index(op.f("ix_access_sessions_user_id"), table_name="sessions", schema="access")
    op.drop_table("sessions", schema="access")
    op.drop_index(op.f("ix_access_request_versions_request_id"), table_name="request_versions", schema="access")
    op.drop_table("request_versions", schema="access")
    op.drop_index(op.f("ix_access_decisions_request_id"), table_name="decisions", schema="access")
    op.drop_table("decisions", schema="access")
    op.drop_table("users", schema="access")
    op.drop_index(op.f("ix_access_requests_status"), table_name="requests", schema="access")
    op.drop_index(op.f("ix_access_requests_requester"), table_name="requests", schema="access")
    op.drop_table("requests", schema="access")
    op.drop_table("clients", schema="access")
    op.execute("DROP FUNCTION IF EXISTS access.refuse_change()")

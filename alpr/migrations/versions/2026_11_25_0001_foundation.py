"""Foundation: a schema per service, and the append-only, hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMAS = ("access", "ingest", "recognition", "hotlist", "audit")


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("actor_roles", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("agency", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=True),
        sa.Column("object_ids", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("case_number", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.Text(), nullable=True),
        sa.Column("source_ip", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=True),
        sa.Column("hash", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_log_seq")),
        schema="audit",
    )
    op.create_index(op.f("ix_audit_audit_log_action"), "audit_log", ["action"], schema="audit")
    op.create_index(op.f("ix_audit_audit_log_case_number"), "audit_log", ["case_number"], schema="audit")
    op.create_index("ix_audit_audit_log_at", "audit_log", ["at"], schema="audit")

    # The hash covers every field an auditor relies on, in a fixed order, and the previous entry's hash.
    op.execute(
        """
        CREATE FUNCTION audit.entry_hash(e audit.audit_log) RETURNS text
        LANGUAGE sql IMMUTABLE AS $$
          SELECT encode(sha256(convert_to(concat_ws(E'\\x1f',
            e.seq::text, e.id::text, to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
            e.service, coalesce(e.actor, ''), array_to_string(e.actor_roles, ','), coalesce(e.agency, ''),
            e.action, coalesce(e.object_type, ''), array_to_string(e.object_ids, ','),
            coalesce(e.case_number, ''), coalesce(e.grant_id, ''), coalesce(e.source_ip, ''), e.outcome,
            coalesce(e.record_count::text, ''), e.details::text, coalesce(e.request_id, ''),
            coalesce(e.prev_hash, '')), 'UTF8')), 'hex')
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION audit.chain_entry() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE last audit.audit_log;
        BEGIN
          -- One writer at a time extends the chain; the lock lasts until the writer's commit.
          PERFORM pg_advisory_xact_lock(hashtext('audit.audit_log'));
          SELECT * INTO last FROM audit.audit_log ORDER BY seq DESC LIMIT 1;
          NEW.seq := coalesce(last.seq, 0) + 1;
          NEW.prev_hash := last.hash;
          NEW.at := clock_timestamp();
          NEW.hash := audit.entry_hash(NEW);
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION audit.refuse_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'audit log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit.audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit.chain_entry()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit.audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit.audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()"
    )


def downgrade() -> None:
    # CASCADE takes the tables, functions and triggers each schema holds.
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

"""Ingest: camera agents (OpenALPR/Rekor), their reads' details and keys, activity, quarantine, spool offsets.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "ingest"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("placed_on", sa.Date(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("token_sha256", sa.String(), nullable=False),
        _ts("token_rotated_at"),
        _ts("created_at"),
        _ts("disabled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.CheckConstraint("kind IN ('fixed', 'unit')", name="ck_agents_kind"),
        schema=S,
    )
    op.create_index("uq_ingest_agents_token_sha256", "agents", ["token_sha256"], unique=True, schema=S)
    op.create_index("uq_ingest_agents_agency_name", "agents", ["agency", "name"], unique=True, schema=S)

    op.create_table(
        "agent_reads",
        sa.Column("read_id", sa.Uuid(), nullable=False),
        _ts("captured_at"),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("is_preview", sa.Boolean(), nullable=False),
        sa.Column("agent_plate", sa.String(), nullable=False),
        sa.Column("agent_confidence", sa.Float(), nullable=True),
        sa.Column("corners", postgresql.JSONB(), nullable=False),
        sa.Column("candidates", postgresql.JSONB(), nullable=False),
        sa.Column("keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("location_source", sa.String(), nullable=False),
        sa.Column("finish_pending", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("read_id", name=op.f("pk_agent_reads")),
        schema=S,
    )
    op.create_index(
        "ix_ingest_agent_reads_finish",
        "agent_reads",
        ["read_id"],
        schema=S,
        postgresql_where=sa.text("finish_pending"),
    )
    op.create_index("ix_ingest_agent_reads_captured_at", "agent_reads", ["captured_at"], schema=S)

    op.create_table(
        "agent_read_keys",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("read_id", sa.Uuid(), nullable=False),
        _ts("captured_at"),
        sa.PrimaryKeyConstraint("agent_id", "key", name=op.f("pk_agent_read_keys")),
        schema=S,
    )
    op.create_index("ix_ingest_agent_read_keys_read", "agent_read_keys", ["read_id"], schema=S)

    op.create_table(
        "agent_activity",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        _ts("started_at"),
        _ts("ended_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_activity")),
        schema=S,
    )
    op.create_index("ix_ingest_agent_activity_agent_start", "agent_activity", ["agent_id", "started_at"], schema=S)

    op.create_table(
        "agent_quarantine",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        _ts("received_at"),
        sa.Column("data_type", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_quarantine")),
        schema=S,
    )
    op.create_index("ix_ingest_agent_quarantine_received", "agent_quarantine", ["received_at"], schema=S)

    op.create_table(
        "agent_field_drops",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "field", name=op.f("pk_agent_field_drops")),
        schema=S,
    )

    op.create_table(
        "agent_spool_offsets",
        sa.Column("segment", sa.String(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_agent_spool_offsets")),
        schema=S,
    )


def downgrade() -> None:
    for table in (
        "agent_spool_offsets",
        "agent_field_drops",
        "agent_quarantine",
        "agent_activity",
        "agent_read_keys",
        "agent_reads",
        "agents",
    ):
        op.drop_table(table, schema=S)

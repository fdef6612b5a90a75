"""Retention: holds on reads and hits, destruction records; the purge may delete hit verifications/dispositions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _hold_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(), nullable=False),
        sa.Column("placed_by", sa.String(), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("released_at", TS, nullable=True),
        sa.Column("released_by", sa.String(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table("holds", *_hold_columns(), schema="ingest")
    op.create_index("ix_ingest_holds_case_number", "holds", ["case_number"], schema="ingest")
    op.create_table(
        "hold_reads",
        sa.Column("hold_id", sa.Uuid(), sa.ForeignKey("ingest.holds.id"), primary_key=True),
        sa.Column("read_id", sa.Uuid(), primary_key=True),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("image_key", sa.String(), nullable=True),
        sa.Column("crop_key", sa.String(), nullable=True),
        schema="ingest",
    )
    op.create_index("ix_ingest_hold_reads_captured_at", "hold_reads", ["captured_at"], schema="ingest")
    op.create_index("ix_ingest_hold_reads_read_id", "hold_reads", ["read_id"], schema="ingest")
    op.create_table(
        "purge_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("cutoff", TS, nullable=False),
        sa.Column("first_day", sa.String(), nullable=True),
        sa.Column("last_day", sa.String(), nullable=True),
        sa.Column("reads_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("objects_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("stream_events_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("partitions_dropped", sa.Integer(), nullable=False),
        sa.Column("reads_kept_held", sa.BigInteger(), nullable=False),
        sa.Column("objects_kept_held", sa.BigInteger(), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        schema="ingest",
    )
    op.create_table(
        "protected_plates",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("plate", sa.String(), nullable=False, unique=True),
        sa.Column("request_reference", sa.String(), nullable=False),
        sa.Column("received_on", TS, nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        schema="ingest",
    )
    op.create_table("hit_holds", *_hold_columns(), schema="hotlist")
    op.create_index("ix_hotlist_hit_holds_case_number", "hit_holds", ["case_number"], schema="hotlist")
    op.create_table(
        "hit_hold_items",
        sa.Column("hold_id", sa.Uuid(), sa.ForeignKey("hotlist.hit_holds.id"), primary_key=True),
        sa.Column("hit_id", sa.Uuid(), primary_key=True),
        schema="hotlist",
    )
    op.create_index("ix_hotlist_hit_hold_items_hit_id", "hit_hold_items", ["hit_id"], schema="hotlist")
    op.create_table(
        "purge_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("cutoff", TS, nullable=False),
        sa.Column("hits_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("verifications_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("dispositions_destroyed", sa.BigInteger(), nullable=False),
        sa.Column("hits_kept_held", sa.BigInteger(), nullable=False),
        schema="hotlist",
    )
    op.create_index("ix_hotlist_hits_captured_at", "hits", ["captured_at"], schema="hotlist")
    # Verifications and dispositions stay append-only for everyone but the retention purge, which says so in its
    # own transaction (set_config('alpr.retention_purge', 'on', true)); updates are refused always.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION hotlist.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' AND current_setting('alpr.retention_purge', true) = 'on' THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION hotlist.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.drop_index("ix_hotlist_hits_captured_at", "hits", schema="hotlist")
    op.drop_table("purge_runs", schema="hotlist")
    op.drop_table("hit_hold_items", schema="hotlist")
    op.drop_table("hit_holds", schema="hotlist")
    op.drop_table("protected_plates", schema="ingest")
    op.drop_table("purge_runs", schema="ingest")
    op.drop_table("hold_reads", schema="ingest")
    op.drop_table("holds", schema="ingest")

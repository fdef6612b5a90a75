"""Ingest: shifts, reads partitioned by capture day, the cars' stream events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shifts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("agency", sa.Text(), nullable=True),
        sa.Column("badge", sa.Text(), nullable=False),
        sa.Column("officer", sa.Text(), nullable=False),
        sa.Column("cameras", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
        schema="ingest",
    )
    op.create_index("ix_ingest_shifts_unit_started_at", "shifts", ["unit", "started_at"], schema="ingest")
    # At most one open shift per unit: two officers cannot both have the car online.
    op.create_index(
        "uq_ingest_shifts_open_unit",
        "shifts",
        ["unit"],
        unique=True,
        schema="ingest",
        postgresql_where=sa.text("ended_at IS NULL"),
    )

    # Declarative partitioning by capture day: retention drops whole partitions (ingest.reads_YYYYMMDD),
    # created on demand by the service. Keys include the partition column, as PostgreSQL requires.
    op.execute(
        """
        CREATE TABLE ingest.reads (
            id uuid NOT NULL,
            captured_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            agency text NOT NULL DEFAULT '',
            unit text NOT NULL,
            shift_id uuid,
            camera text NOT NULL,
            client_read_id text NOT NULL,
            lat double precision NOT NULL,
            lon double precision NOT NULL,
            heading double precision,
            speed double precision,
            plate text,
            confusion_key text,
            plate_confidence double precision,
            state text,
            plate_source text,
            car_plate text,
            image_key text,
            crop_key text,
            recognition_pending boolean NOT NULL DEFAULT false,
            match_pending boolean NOT NULL DEFAULT false,
            attempts integer NOT NULL DEFAULT 0,
            last_error text,
            list_version bigint,
            hits jsonb NOT NULL DEFAULT '[]'::jsonb,
            CONSTRAINT pk_reads PRIMARY KEY (id, captured_at)
        ) PARTITION BY RANGE (captured_at)
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_ingest_reads_client_key ON ingest.reads (agency, unit, client_read_id, captured_at)"
    )
    op.execute("CREATE INDEX ix_ingest_reads_plate ON ingest.reads (plate text_pattern_ops, captured_at)")
    op.execute(
        "CREATE INDEX ix_ingest_reads_confusion_key ON ingest.reads (confusion_key text_pattern_ops, captured_at)"
    )
    op.execute("CREATE INDEX ix_ingest_reads_captured_at ON ingest.reads (captured_at)")
    op.execute(
        "CREATE INDEX ix_ingest_reads_pending ON ingest.reads (received_at) WHERE recognition_pending OR match_pending"
    )

    op.create_table(
        "stream_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("agency", sa.Text(), nullable=True),
        sa.Column("read_id", sa.Uuid(), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_events")),
        schema="ingest",
    )
    op.create_index("ix_ingest_stream_events_unit_id", "stream_events", ["unit", "id"], schema="ingest")
    op.create_index("uq_ingest_stream_events_dedupe", "stream_events", ["dedupe_key"], unique=True, schema="ingest")


def downgrade() -> None:
    op.drop_table("stream_events", schema="ingest")
    op.execute("DROP TABLE IF EXISTS ingest.reads CASCADE")  # takes every day partition with it
    op.drop_table("shifts", schema="ingest")

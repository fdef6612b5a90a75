"""Daily facts: the log of use's and the biennial audit's counts, kept apart from the data the purge destroys.

Revision ID: 1701
Revises: 1401
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1701"
down_revision: str | None = "1401"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "read_facts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("reader", sa.String(), nullable=False),
        sa.Column("shift_id", sa.String(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.Column("distinct_plates", sa.Integer(), nullable=False),
        sa.Column("reads_no_plate", sa.Integer(), nullable=False),
        sa.Column("classification", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("day", "agency", "unit", "reader", "shift_id", name=op.f("pk_read_facts")),
        schema="ingest",
    )
    op.create_table(
        "read_fact_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_read_fact_days")),
        schema="ingest",
    )
    op.create_table(
        "hit_facts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("list_name", sa.String(), nullable=False),
        sa.Column("covert", sa.Boolean(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("outcomes", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("day", "agency", "unit", "category", "list_name", name=op.f("pk_hit_facts")),
        schema="hotlist",
    )
    op.create_table(
        "hit_fact_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_hit_fact_days")),
        schema="hotlist",
    )


def downgrade() -> None:
    op.drop_table("hit_fact_days", schema="hotlist")
    op.drop_table("hit_facts", schema="hotlist")
    op.drop_table("read_fact_days", schema="ingest")
    op.drop_table("read_facts", schema="ingest")

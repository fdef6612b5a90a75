"""Suspensions of an agency's collection on the commissioner's order (Minn. Stat. 13.824 subd. 6(b)).

Revision ID: 2801
Revises: 2911
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2801"
down_revision: str | None = "2911"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suspensions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.Text(), nullable=False),
        sa.Column("order_reference", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("suspended_by", sa.Text(), nullable=False),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.Text(), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suspensions")),
        schema="ingest",
    )
    op.create_index(
        "uq_ingest_suspensions_active", "suspensions", ["agency"], unique=True, schema="ingest",
        postgresql_where=sa.text("lifted_at IS NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_ingest_suspensions_active", table_name="suspensions", schema="ingest")
    op.drop_table("suspensions", schema="ingest")

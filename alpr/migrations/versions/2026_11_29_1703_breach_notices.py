"""Breach-notification records (Minn. Stat. 13.055).

Revision ID: 1703
Revises: 1702
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1703"
down_revision: str | None = "1702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "breach_notices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records_affected", sa.Integer(), nullable=True),
        sa.Column("unauthorized_by_employee", sa.Boolean(), nullable=False),
        sa.Column("notified", postgresql.JSONB(), nullable=False),
        sa.Column("investigation_report", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_notices")),
        schema="access",
    )


def downgrade() -> None:
    op.drop_table("breach_notices", schema="access")

"""Quarantined agent posts age from their capture time and name their plates (Safe at Home reaches them).

Revision ID: 1702
Revises: 1701
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "1702"
down_revision: str | None = "1701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agent_quarantine", sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True), schema="ingest"
    )
    op.add_column(
        "agent_quarantine",
        sa.Column("plates", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
        schema="ingest",
    )


def downgrade() -> None:
    op.drop_column("agent_quarantine", "plates", schema="ingest")
    op.drop_column("agent_quarantine", "captured_at", schema="ingest")

"""BCA notices (Minn. Stat. 13.824 subd. 8): notices sent (access), fixed reader location history (ingest).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bca_notices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("items", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("readers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        schema="access",
    )
    op.create_table(
        "agent_locations",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("placed_on", sa.Date(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        schema="ingest",
    )
    op.create_index("ix_ingest_agent_locations_agent", "agent_locations", ["agent_id", "placed_on"], schema="ingest")


def downgrade() -> None:
    op.drop_index("ix_ingest_agent_locations_agent", table_name="agent_locations", schema="ingest")
    op.drop_table("agent_locations", schema="ingest")
    op.drop_table("bca_notices", schema="access")

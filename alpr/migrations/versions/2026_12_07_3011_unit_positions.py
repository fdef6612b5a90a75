"""A unit's MDC posts its position on its own (POST /v1/units/{unit}/position), without a read, for its camera
agents' reads without GPS (issue 30). Only the latest positions: rows older than ALPR_INGEST_UNIT_POSITION_KEEP_S
are deleted at the unit's next post and by ingest's worker, so the table never holds a track of the car.

Revision ID: 3011
Revises: 3001
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3011"
down_revision: str | None = "3001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unit_positions",
        sa.Column("agency", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("agency", "unit", "at"),
        schema="ingest",
    )
    # The purge of positions past their keep time (every worker round) finds them by time.
    op.create_index("ix_ingest_unit_positions_at", "unit_positions", ["at"], schema="ingest")


def downgrade() -> None:
    op.drop_index("ix_ingest_unit_positions_at", table_name="unit_positions", schema="ingest")
    op.drop_table("unit_positions", schema="ingest")

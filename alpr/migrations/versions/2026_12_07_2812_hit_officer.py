"""hotlist.hits.officer: the unit's officer when the read was taken, carried by ingest's match request, so a hit opens
for that officer (and the agency's supervisors, or under a grant) without a call to ingest per view (7(a)).

Revision ID: 2812
Revises: 2811
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2812"
down_revision: str | None = "2811"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("hits", sa.Column("officer", sa.Text(), nullable=True), schema="hotlist")


def downgrade() -> None:
    op.drop_column("hits", "officer", schema="hotlist")

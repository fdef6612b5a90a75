"""The purge's destruction record counts orphan photos: objects no read refers to (a worker killed between the
upload and the commit), removed once older than ALPR_PURGE_ORPHAN_GRACE_S (issue 29).

Revision ID: 2911
Revises: 3011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2911"
down_revision: str | None = "3011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "purge_runs",
        sa.Column("orphans_destroyed", sa.BigInteger(), nullable=False, server_default="0"),
        schema="ingest",
    )


def downgrade() -> None:
    op.drop_column("purge_runs", "orphans_destroyed", schema="ingest")

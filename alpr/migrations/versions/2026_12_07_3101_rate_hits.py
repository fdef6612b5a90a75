"""Rate-limit hits in PostgreSQL (services/access/windows.py): the log-in throttle and the public log's per-source
limit hold across access replicas.

Revision ID: 3101
Revises: 2601
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3101"
down_revision: str | None = "2601"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        schema="access",
    )
    op.create_index("ix_rate_hits_key_at", "rate_hits", ["key", "at"], schema="access")


def downgrade() -> None:
    op.drop_table("rate_hits", schema="access")

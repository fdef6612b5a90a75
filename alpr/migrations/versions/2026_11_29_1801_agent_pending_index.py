"""Agent reads still to be matched are picked oldest first from a partial index on their capture time, not by
sorting every pending row (issue 18: the importer's next-batch query scanned the whole reads table).

Revision ID: 1801
Revises: 1704
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1801"
down_revision: str | None = "1704"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_ingest_agent_reads_finish", table_name="agent_reads", schema="ingest")
    op.create_index(
        "ix_ingest_agent_reads_finish_at",
        "agent_reads",
        ["captured_at"],
        schema="ingest",
        postgresql_where=sa.text("finish_pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_agent_reads_finish_at", table_name="agent_reads", schema="ingest")
    op.create_index(
        "ix_ingest_agent_reads_finish",
        "agent_reads",
        ["read_id"],
        schema="ingest",
        postgresql_where=sa.text("finish_pending"),
    )

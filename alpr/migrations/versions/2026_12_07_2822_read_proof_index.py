"""A read's inclusion proof (shared/merkle.py) finds the `reads.store` audit entry whose `object_ids` name the read:
without an index that is a scan of every group commit's entry and its array (tens of milliseconds for 20,000 entries,
growing with the log). A GIN index over those entries' ids only (the other entries are not asked this way).

Revision ID: 2822
Revises: 2821
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2822"
down_revision: str | None = "2821"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_audit_log_reads_store_ids",
        "audit_log",
        ["object_ids"],
        schema="audit",
        postgresql_using="gin",
        postgresql_where=sa.text("action = 'reads.store'"),
    )


def downgrade() -> None:
    op.drop_index("ix_audit_audit_log_reads_store_ids", table_name="audit_log", schema="audit")

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


_NAME = "audit.ix_audit_audit_log_reads_store_ids"


def upgrade() -> None:
    # CONCURRENTLY, outside the migration's transaction: a plain build locks the audit log against writes for as long
    # as it runs, and every group commit of the read path writes an audit entry. A build cut short leaves an invalid
    # index behind; the next run drops it first and builds again.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")
        op.create_index(
            "ix_audit_audit_log_reads_store_ids",
            "audit_log",
            ["object_ids"],
            schema="audit",
            postgresql_using="gin",
            postgresql_where=sa.text("action = 'reads.store'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")

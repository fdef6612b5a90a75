"""Every audit entry's `object_ids` in one GIN index, in place of 2822's index over the `reads.store` entries only:
a read's evidence package lists every entry that names the read (its storage, the searches and exports that
returned it), and without an index that query read the whole audit log, growing with every group commit ever
recorded. The inclusion proof's query (action = 'reads.store') is served by the same index.

Revision ID: 2823
Revises: 2822
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2823"
down_revision: str | None = "2822"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ALL = "ix_audit_audit_log_object_ids"
_READS_STORE = "ix_audit_audit_log_reads_store_ids"


def upgrade() -> None:
    # CONCURRENTLY, as in 2822: the read path writes an audit entry with every group commit, and a plain build would
    # hold those writes for as long as it runs. A build cut short leaves an invalid index; a rerun drops it first.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS audit.{_ALL}")
        op.create_index(_ALL, "audit_log", ["object_ids"], schema="audit", postgresql_using="gin",
                        postgresql_concurrently=True)  # fmt: skip
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS audit.{_READS_STORE}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS audit.{_READS_STORE}")
        op.create_index(
            _READS_STORE,
            "audit_log",
            ["object_ids"],
            schema="audit",
            postgresql_using="gin",
            postgresql_where=sa.text("action = 'reads.store'"),
            postgresql_concurrently=True,
        )
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS audit.{_ALL}")

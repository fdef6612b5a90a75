"""Every read carries its data classification: private unless a hold's case says otherwise.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On the partitioned parent: every day's partition, present and future, gets the column.
    op.add_column(
        "reads",
        sa.Column("classification", sa.Text(), server_default="private", nullable=False),
        schema="ingest",
    )
    op.create_check_constraint(
        "classification",
        "reads",
        "classification IN ('private', 'public', 'active_investigative')",
        schema="ingest",
    )
    # Reads already under an active hold take its classification.
    op.execute(
        "UPDATE ingest.reads r SET classification = h.classification FROM ingest.hold_reads hr "
        "JOIN ingest.holds h ON h.id = hr.hold_id "
        "WHERE h.released_at IS NULL AND hr.read_id = r.id AND hr.captured_at = r.captured_at"
    )


def downgrade() -> None:
    op.drop_constraint("classification", "reads", schema="ingest", type_="check")
    op.drop_column("reads", "classification", schema="ingest")

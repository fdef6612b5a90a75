"""A breach record (13.055) is one agency's: in a back office several agencies share, another agency's supervisor
neither reads it (what happened, the investigation report) nor adds notifications to it.

Revision ID: 2101
Revises: 1801
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2101"
down_revision: str | None = "1801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "" for a record whose recorder is unknown: a single-agency deployment's tokens carry no agency and still see it.
    op.add_column("breach_notices", sa.Column("agency", sa.Text(), nullable=False, server_default=""), schema="access")
    # A breach recorded before was the recording person's agency's.
    op.execute(
        "UPDATE access.breach_notices b SET agency = u.agency FROM access.users u WHERE u.id::text = b.recorded_by"
    )


def downgrade() -> None:
    op.drop_column("breach_notices", "agency", schema="access")

"""A grant names the agency whose reads it opens: the deciding supervisor's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null on grants given before: they keep searching every agency's reads, as they did when approved.
    op.add_column("grants", sa.Column("data_agency", sa.Text(), nullable=True), schema="access")


def downgrade() -> None:
    op.drop_column("grants", "data_agency", schema="access")

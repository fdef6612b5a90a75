"""How sure a recognised read is: whether the two plate readers agreed on it (issue 27).

`agreement` is recognition's word on the stored reading: "both" (PP-OCR and the plate-specific reader gave the same
reading), "one" (they differed, or only one read a plate), "none" (they differed and neither was sure); NULL where
recognition did not read the plate (the car's or an agent's own reading). Nullable, no default: old reads stay NULL.

Revision ID: 2701
Revises: 3101
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2701"
down_revision: str | None = "3101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("reads", sa.Column("agreement", sa.Text(), nullable=True), schema="ingest")


def downgrade() -> None:
    op.drop_column("reads", "agreement", schema="ingest")

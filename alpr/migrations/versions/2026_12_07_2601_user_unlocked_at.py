"""When an administrator last lifted a person's log-in throttle: the throttle's windows for the account are keyed
by it, so `alpr access unlock` or `POST /v1/users/{id}/unlock` lifts it on every access replica at once.

Revision ID: 2601
Revises: 2801
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2601"
down_revision: str | None = "2801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=True), schema="access")


def downgrade() -> None:
    op.drop_column("users", "unlocked_at", schema="access")

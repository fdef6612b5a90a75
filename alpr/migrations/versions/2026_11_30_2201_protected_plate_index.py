"""Safe at Home plates looked up by plate alone: every batch of reads (the idempotency lookup) and every agents'
import round ask `plate = ANY(...)` for all agencies at once, which the (agency, plate) index cannot serve: without
this index each of those queries reads the whole table.

Revision ID: 2201
Revises: 2101
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2201"
down_revision: str | None = "2101"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ingest_protected_plates_plate", "protected_plates", ["plate"], schema="ingest")


def downgrade() -> None:
    op.drop_index("ix_ingest_protected_plates_plate", table_name="protected_plates", schema="ingest")

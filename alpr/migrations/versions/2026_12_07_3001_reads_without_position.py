"""A read without a position: a car-mounted agent posts no GPS without a GPS device, and its unit's MDC may have
posted no position near the capture time. The read is still a read (and a stolen car it saw is still a hit), so it
is stored with lat/lon NULL and `ingest.agent_reads.location_source = 'none'` rather than quarantined (issue 30).

Revision ID: 3001
Revises: 2201
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3001"
down_revision: str | None = "2201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On the partitioned parent: PostgreSQL applies it to every partition.
    op.alter_column("reads", "lat", nullable=True, schema="ingest")
    op.alter_column("reads", "lon", nullable=True, schema="ingest")


def downgrade() -> None:
    # Reads stored without a position cannot be given one: they go, as they would have been quarantined.
    op.execute("DELETE FROM ingest.reads WHERE lat IS NULL OR lon IS NULL")
    op.alter_column("reads", "lat", nullable=False, schema="ingest")
    op.alter_column("reads", "lon", nullable=False, schema="ingest")

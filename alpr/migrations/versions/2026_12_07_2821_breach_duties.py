"""The statute's clocks on a breach record (13.055): individuals affected, law-enforcement delays, the end of the
investigation and when its report was entered; and the annual security assessments (subd. 6).

Revision ID: 2821
Revises: 2812
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2821"
down_revision: str | None = "2812"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("breach_notices", sa.Column("individuals_affected", sa.Integer(), nullable=True), schema="access")
    op.add_column(
        "breach_notices",
        sa.Column("law_enforcement_delays", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        schema="access",
    )
    op.add_column(
        "breach_notices",
        sa.Column("investigation_completed_at", sa.DateTime(timezone=True), nullable=True),
        schema="access",
    )
    op.add_column(
        "breach_notices", sa.Column("report_recorded_at", sa.DateTime(timezone=True), nullable=True), schema="access"
    )
    op.add_column("breach_notices", sa.Column("report_details", postgresql.JSONB(), nullable=True), schema="access")
    # A report entered before this revision was entered when the record was made or later: its record's time.
    op.execute(
        "UPDATE access.breach_notices SET report_recorded_at = recorded_at WHERE investigation_report IS NOT NULL"
    )
    op.create_table(
        "security_assessments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency", sa.Text(), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("performed_by", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_assessments")),
        schema="access",
    )


def downgrade() -> None:
    op.drop_table("security_assessments", schema="access")
    op.drop_column("breach_notices", "report_details", schema="access")
    op.drop_column("breach_notices", "report_recorded_at", schema="access")
    op.drop_column("breach_notices", "investigation_completed_at", schema="access")
    op.drop_column("breach_notices", "law_enforcement_delays", schema="access")
    op.drop_column("breach_notices", "individuals_affected", schema="access")

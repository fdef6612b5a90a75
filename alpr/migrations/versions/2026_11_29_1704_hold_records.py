"""Subject requests (exculpatory preservation, 13.824 subd. 3(b)) and hold reviews (subd. 3(d), 138.17).

Revision ID: 1704
Revises: 1703
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1704"
down_revision: str | None = "1703"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("requester", sa.String(), nullable=False),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("charge", sa.Text(), nullable=False),
        sa.Column("received_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("review_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document_key", sa.String(), nullable=False),
        sa.Column("document_sha256", sa.String(), nullable=False),
        sa.Column("recorded_by", sa.String(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["hold_id"], ["ingest.holds.id"], name=op.f("fk_subject_requests_hold_id_holds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_requests")),
        schema="ingest",
    )
    op.create_index("ix_ingest_subject_requests_hold_id", "subject_requests", ["hold_id"], schema="ingest")
    op.create_table(
        "hold_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("reviewed_by", sa.String(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("next_review_on", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["hold_id"], ["ingest.holds.id"], name=op.f("fk_hold_reviews_hold_id_holds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hold_reviews")),
        schema="ingest",
    )
    op.create_index("ix_ingest_hold_reviews_hold_id", "hold_reviews", ["hold_id"], schema="ingest")


def downgrade() -> None:
    op.drop_table("hold_reviews", schema="ingest")
    op.drop_table("subject_requests", schema="ingest")

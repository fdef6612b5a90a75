"""One door to stored data: a custodian agency on lists, hits, holds, Safe at Home requests and disclosures; list
names and open units unique per agency; Safe at Home requests may wait for a second supervisor.

Revision ID: 1401
Revises: 1501
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1401"
down_revision: str | None = "1501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _agency(table: str, schema: str) -> None:
    # "" for the rows written before: a single-agency deployment's tokens carry no agency and still see them.
    op.add_column(table, sa.Column("agency", sa.Text(), nullable=False, server_default=""), schema=schema)


def upgrade() -> None:
    _agency("agency_lists", "hotlist")
    # The owner named on a list before was its agency.
    op.execute("UPDATE hotlist.agency_lists SET agency = owner")
    op.drop_constraint("uq_agency_lists_name", "agency_lists", schema="hotlist", type_="unique")
    op.create_unique_constraint("uq_agency_lists_agency_name", "agency_lists", ["agency", "name"], schema="hotlist")
    op.add_column("agency_lists", sa.Column("case_number", sa.String(), nullable=True), schema="hotlist")
    op.add_column("agency_lists", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True), schema="hotlist")

    op.add_column("hits", sa.Column("custodian", sa.Text(), nullable=False, server_default=""), schema="hotlist")
    op.execute(
        "UPDATE hotlist.hits SET custodian = CASE WHEN covert THEN coalesce(list_owner, '') "
        "ELSE coalesce(agency, '') END"
    )
    op.create_index("ix_hotlist_hits_custodian", "hits", ["custodian"], schema="hotlist")
    _agency("hit_holds", "hotlist")
    op.execute(
        "UPDATE hotlist.hit_holds h SET agency = coalesce((SELECT min(x.custodian) FROM hotlist.hit_hold_items i "
        "JOIN hotlist.hits x ON x.id = i.hit_id WHERE i.hold_id = h.id), '')"
    )

    _agency("holds", "ingest")
    op.execute(
        "UPDATE ingest.holds h SET agency = coalesce((SELECT min(r.agency) FROM ingest.hold_reads hr "
        "JOIN ingest.reads r ON r.id = hr.read_id AND r.captured_at = hr.captured_at WHERE hr.hold_id = h.id), '')"
    )
    _agency("protected_plates", "ingest")
    op.drop_constraint("uq_protected_plates_plate", "protected_plates", schema="ingest", type_="unique")
    op.create_index(
        "uq_ingest_protected_plates_agency_plate", "protected_plates", ["agency", "plate"], unique=True, schema="ingest"
    )
    op.add_column(
        "protected_plates",
        sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="ingest",
    )
    op.add_column("protected_plates", sa.Column("confirmed_by", sa.String(), nullable=True), schema="ingest")

    op.drop_index("uq_ingest_shifts_open_unit", "shifts", schema="ingest")
    op.create_index(
        "uq_ingest_shifts_open_unit",
        "shifts",
        ["agency", "unit"],
        unique=True,
        schema="ingest",
        postgresql_where=sa.text("ended_at IS NULL"),
        postgresql_nulls_not_distinct=True,
    )

    _agency("disclosures", "access")
    op.execute(
        "UPDATE access.disclosures d SET agency = coalesce((SELECT g.data_agency FROM access.grants g "
        "WHERE g.id = d.grant_id), '')"
    )


def downgrade() -> None:
    op.drop_column("disclosures", "agency", schema="access")
    op.drop_index("uq_ingest_shifts_open_unit", "shifts", schema="ingest")
    op.create_index(
        "uq_ingest_shifts_open_unit",
        "shifts",
        ["unit"],
        unique=True,
        schema="ingest",
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.drop_column("protected_plates", "confirmed_by", schema="ingest")
    op.drop_column("protected_plates", "pending", schema="ingest")
    op.drop_index("uq_ingest_protected_plates_agency_plate", "protected_plates", schema="ingest")
    op.create_unique_constraint("uq_protected_plates_plate", "protected_plates", ["plate"], schema="ingest")
    op.drop_column("protected_plates", "agency", schema="ingest")
    op.drop_column("holds", "agency", schema="ingest")
    op.drop_column("hit_holds", "agency", schema="hotlist")
    op.drop_index("ix_hotlist_hits_custodian", "hits", schema="hotlist")
    op.drop_column("hits", "custodian", schema="hotlist")
    op.drop_column("agency_lists", "expires_at", schema="hotlist")
    op.drop_column("agency_lists", "case_number", schema="hotlist")
    op.drop_constraint("uq_agency_lists_agency_name", "agency_lists", schema="hotlist", type_="unique")
    op.create_unique_constraint("uq_agency_lists_name", "agency_lists", ["name"], schema="hotlist")
    op.drop_column("agency_lists", "agency", schema="hotlist")

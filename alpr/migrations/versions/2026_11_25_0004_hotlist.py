"""Hotlist: list versions (rows partitioned by version), sync runs, agency lists, hits, verifications, dispositions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "hotlist"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "list_versions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        _ts("loaded_at"),
        _ts("verified_at"),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("bad_rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("last_modified", sa.String(), nullable=True),
        sa.Column("dropped", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_versions")),
        schema=S,
    )
    # At most one current version.
    op.create_index(
        "uq_list_versions_current",
        "list_versions",
        ["is_current"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("is_current"),
    )
    # Partitioned by version: a load fills a fresh partition; an old version is dropped whole.
    op.execute(
        """
        CREATE TABLE hotlist.bca_entries (
          version_id bigint NOT NULL, nic varchar NOT NULL, ori varchar NOT NULL,
          entry_date date NOT NULL, plate varchar NOT NULL, state varchar NOT NULL, plate_year varchar,
          plate_type varchar, vehicle_year varchar, make varchar, model varchar, style varchar, color varchar,
          code varchar GENERATED ALWAYS AS (left(nic, 1)) STORED  -- the file code: the NIC's first letter
        ) PARTITION BY LIST (version_id)
        """
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        _ts("finished_at", nullable=True),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("entries", sa.Integer(), nullable=True),
        sa.Column("bad_rows", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
        schema=S,
    )
    op.create_index(op.f("ix_hotlist_sync_runs_finished_at"), "sync_runs", ["finished_at"], schema=S)
    op.create_table(
        "agency_lists",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("covert", sa.Boolean(), nullable=False),
        sa.Column("past_read_matching", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        _ts("created_at", nullable=True),
        _ts("changed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_agency_lists_name")),
        schema=S,
    )
    op.create_table(
        "agency_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("plate", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("case_number", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        _ts("created_at", nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(), nullable=True),
        _ts("changed_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"], ["hotlist.agency_lists.id"], name=op.f("fk_agency_entries_list_id_agency_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_entries")),
        schema=S,
    )
    op.create_index(op.f("ix_hotlist_agency_entries_list_id"), "agency_entries", ["list_id"], schema=S)
    op.create_index(op.f("ix_hotlist_agency_entries_plate"), "agency_entries", ["plate"], schema=S)
    op.create_table(
        "hits",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("read_id", sa.String(), nullable=False),
        sa.Column("entry_id", sa.String(), nullable=False),
        sa.Column("list_name", sa.String(), nullable=False),
        sa.Column("list_version", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("category_label", sa.String(), nullable=False),
        sa.Column("concerns", sa.String(), nullable=False),
        sa.Column("match", sa.String(), nullable=False),
        sa.Column("read_plate", sa.String(), nullable=False),
        sa.Column("read_state", sa.String(), nullable=True),
        sa.Column("entry_plate", sa.String(), nullable=False),
        sa.Column("entry_state", sa.String(), nullable=True),
        sa.Column("state_check", sa.String(), nullable=False),
        sa.Column("covert", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("list_owner", sa.String(), nullable=True),
        sa.Column("past_read", sa.Boolean(), nullable=False),
        sa.Column("agency", sa.String(), nullable=True),
        sa.Column("unit", sa.String(), nullable=True),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        _ts("created_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hits")),
        # A retried match (same read) stores no second hit for the same entry.
        sa.UniqueConstraint("read_id", "list_name", "entry_id", name="uq_hits_read_id"),
        schema=S,
    )
    op.create_index(op.f("ix_hotlist_hits_created_at"), "hits", ["created_at"], schema=S)
    op.create_table(
        "hit_verifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hit_id", sa.Uuid(), nullable=False),
        sa.Column("read_accurate", sa.Boolean(), nullable=False),
        sa.Column("state_matches", sa.Boolean(), nullable=False),
        sa.Column("still_current", sa.Boolean(), nullable=False),
        sa.Column("checked_version", sa.Integer(), nullable=True),
        sa.Column("by", sa.String(), nullable=False),
        _ts("at", nullable=True),
        sa.ForeignKeyConstraint(["hit_id"], ["hotlist.hits.id"], name=op.f("fk_hit_verifications_hit_id_hits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hit_verifications")),
        schema=S,
    )
    op.create_index(op.f("ix_hotlist_hit_verifications_hit_id"), "hit_verifications", ["hit_id"], schema=S)
    op.create_table(
        "hit_dispositions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hit_id", sa.Uuid(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("corrects", sa.Uuid(), nullable=True),
        sa.Column("by", sa.String(), nullable=False),
        _ts("at", nullable=True),
        sa.ForeignKeyConstraint(["hit_id"], ["hotlist.hits.id"], name=op.f("fk_hit_dispositions_hit_id_hits")),
        sa.ForeignKeyConstraint(
            ["corrects"], ["hotlist.hit_dispositions.id"], name=op.f("fk_hit_dispositions_corrects_hit_dispositions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hit_dispositions")),
        sa.UniqueConstraint("corrects", name=op.f("uq_hit_dispositions_corrects")),
        schema=S,
    )
    op.create_index(op.f("ix_hotlist_hit_dispositions_hit_id"), "hit_dispositions", ["hit_id"], schema=S)
    # Dispositions are final: a correction is a new row (refused here even if the service had a bug).
    op.execute(
        """
        CREATE FUNCTION hotlist.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in ("hit_dispositions", "hit_verifications"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON hotlist.{table} "
            "FOR EACH ROW EXECUTE FUNCTION hotlist.refuse_change()"
        )


def downgrade() -> None:
    for table in ("hit_dispositions", "hit_verifications", "hits", "agency_entries", "agency_lists", "sync_runs"):
        op.drop_table(table, schema=S)
    op.execute("DROP TABLE hotlist.bca_entries")  # takes its partitions
    op.drop_table("list_versions", schema=S)
    op.execute("DROP FUNCTION hotlist.refuse_change()")

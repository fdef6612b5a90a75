"""Trust against insiders: partition DDL behind owner-run functions, the audit chain's keyed seals, revocations.

- The services connect as least-privilege roles that own nothing, so the partitions they make and drop at run time
  (reads by day, BCA list versions) go through SECURITY DEFINER functions owned by the migration owner; each one
  checks its argument and does exactly one thing.
- `audit.seals`: the keyed (HMAC) link of each audit entry, written by the sealer that holds the key; append-only.
- `access.revocations`: what the access service publishes when a session, token or identity ends; every service
  reads it (cached a few seconds) and refuses tokens it names.

Revision ID: 1501
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1501"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SAFE = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION ingest.create_reads_partition(day date) RETURNS void LANGUAGE plpgsql {_SAFE} AS $$
        DECLARE name text := 'reads_' || to_char(day, 'YYYYMMDD');
        BEGIN
          IF to_regclass('ingest.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE ingest.%I PARTITION OF ingest.reads FOR VALUES FROM (%L) TO (%L)',
                           name, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
          END IF;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION ingest.drop_reads_partition(day date) RETURNS void LANGUAGE plpgsql {_SAFE} AS $$
        BEGIN
          EXECUTE format('DROP TABLE IF EXISTS ingest.%I', 'reads_' || to_char(day, 'YYYYMMDD'));
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION hotlist.create_entries_partition(version bigint) RETURNS void LANGUAGE plpgsql {_SAFE} AS $$
        DECLARE name text := 'bca_entries_v' || version;
        BEGIN
          EXECUTE format('CREATE TABLE hotlist.%I PARTITION OF hotlist.bca_entries FOR VALUES IN (%s)', name, version);
          -- COPY leaves version_id out: the partition's own default fills it.
          EXECUTE format('ALTER TABLE hotlist.%I ALTER COLUMN version_id SET DEFAULT %s', name, version);
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION hotlist.index_entries_partition(version bigint) RETURNS void LANGUAGE plpgsql {_SAFE} AS $$
        BEGIN
          EXECUTE format('CREATE UNIQUE INDEX %I ON hotlist.%I (nic)',
                         'bca_entries_v' || version || '_nic', 'bca_entries_v' || version);
        END $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION hotlist.drop_entries_partition(version bigint) RETURNS void LANGUAGE plpgsql {_SAFE} AS $$
        BEGIN
          EXECUTE format('DROP TABLE IF EXISTS hotlist.%I', 'bca_entries_v' || version);
        END $$
        """
    )
    for fn in (
        "ingest.create_reads_partition(date)",
        "ingest.drop_reads_partition(date)",
        "hotlist.create_entries_partition(bigint)",
        "hotlist.index_entries_partition(bigint)",
        "hotlist.drop_entries_partition(bigint)",
    ):
        # Granted per service role when the roles are made (alpr/roles.py), never to everyone.
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")

    op.create_table(
        "seals",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.Text(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_seals")),
        schema="audit",
    )
    op.execute(
        "CREATE TRIGGER seals_append_only BEFORE UPDATE OR DELETE ON audit.seals "
        "FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()"
    )
    op.create_table(
        "revocations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),  # session | token | subject
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocations")),
        schema="access",
    )
    op.create_index("ix_access_revocations_revoked_at", "revocations", ["revoked_at"], schema="access")


def downgrade() -> None:
    op.drop_index("ix_access_revocations_revoked_at", table_name="revocations", schema="access")
    op.drop_table("revocations", schema="access")
    op.drop_table("seals", schema="audit")
    for fn in (
        "ingest.create_reads_partition(date)",
        "ingest.drop_reads_partition(date)",
        "hotlist.create_entries_partition(bigint)",
        "hotlist.index_entries_partition(bigint)",
        "hotlist.drop_entries_partition(bigint)",
    ):
        op.execute(f"DROP FUNCTION {fn}")

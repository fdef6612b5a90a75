"""The migrations and the models describe the same schema: Alembic's autogenerate, run against the migrated test
database, finds no table, column or index that one side has and the other lacks, and no type or nullability change
beyond the known, harmless differences listed here (hand-written migrations use TEXT where SQLModel says VARCHAR,
and leave a few server-filled timestamps nullable)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import types
from sqlalchemy.ext.asyncio import create_async_engine

import alpr.models  # noqa: F401 - registers every service's tables on the metadata
from shared.db import SERVICE_SCHEMAS, metadata

# Indexes the migrations create for their queries that the models do not declare (partial, or on a key's column).
MIGRATION_ONLY_INDEXES = {
    "ix_audit_audit_log_at",
    "ix_hotlist_hit_hold_items_hit_id",
    "ix_hotlist_hits_captured_at",
    "uq_list_versions_current",
    "ix_ingest_hold_reads_read_id",
}


RUNTIME_PARTITION = re.compile(r"reads_\d{8}|bca_entries_v\d+")


def _include(name: str | None, type_: str, parent: object) -> bool:
    if type_ == "schema":
        return name in SERVICE_SCHEMAS
    # Partitions made at run time under the partitioned tables the models declare: ingest's days of reads
    # (reads_YYYYMMDD), hotlist's versions of the BCA list (bca_entries_vN).
    return not (type_ == "table" and RUNTIME_PARTITION.fullmatch(name or ""))


def _diffs(url: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:

                def compare(sync: Any) -> list[Any]:
                    opts = {"include_schemas": True, "include_name": _include, "compare_type": True}
                    return list(compare_metadata(MigrationContext.configure(sync, opts=opts), metadata))

                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _harmless(diff: Any) -> bool:
    if isinstance(diff, list):  # column changes come as a list of one tuple
        (op, _schema, _table, _column, _existing, old, new) = diff[0]
        if op == "modify_type":
            # TEXT and VARCHAR without a length (SQLModel's AutoString) are the same thing to PostgreSQL.
            new = new.impl if isinstance(new, types.TypeDecorator) else new
            strings = (types.Text, types.String)
            return isinstance(old, strings) and isinstance(new, strings) and getattr(new, "length", None) is None
        # The database accepts NULL where the model never writes one: looser, never refusing a row.
        return op == "modify_nullable" and old is True and new is False
    op, obj = diff[0], diff[1]
    return op == "remove_index" and obj.name in MIGRATION_ONLY_INDEXES


def test_models_and_migrations_agree(database_url: str) -> None:
    drift = [d for d in _diffs(database_url) if not _harmless(d)]
    assert drift == [], "models and migrations disagree: write a migration (alembic revision) for the model change"

"""A read's inclusion proof and its evidence package find the audit entries naming the read through the GIN index on
the entries' ids, not by walking the whole audit log (a scan that grows with every group commit ever recorded)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.access.evidence import AUDIT_OF_READ_SQL
from shared import merkle
from shared.settings import Settings

INDEX = "ix_audit_audit_log_object_ids"


async def test_the_proof_and_the_evidence_package_probe_the_index_of_object_ids(settings: Settings) -> None:
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            tx = await conn.begin()
            try:
                # A busy log: 3,000 group commits of 50 reads each (rolled back with the test).
                await conn.execute(
                    text(
                        "INSERT INTO audit.audit_log (id, service, actor_roles, action, object_ids, outcome, details) "
                        "SELECT gen_random_uuid(), 'ingest', '{}', 'reads.store', "
                        "ARRAY(SELECT gen_random_uuid()::text FROM generate_series(1, 50) WHERE g > 0), 'ok', "
                        "'{}'::jsonb FROM generate_series(1, 3000) g"
                    )
                )
                seq, last = (
                    await conn.execute(
                        text("SELECT seq, object_ids[7] FROM audit.audit_log WHERE action = 'reads.store' "
                             "ORDER BY seq DESC LIMIT 1")
                    )
                ).one()  # fmt: skip
                # What autovacuum does in service: the index's pending entries moved into it, statistics taken.
                assert (await conn.execute(text("SELECT to_regclass(:i)"), {"i": f"audit.{INDEX}"})).scalar()
                await conn.execute(text("SELECT gin_clean_pending_list(CAST(:i AS regclass))"), {"i": f"audit.{INDEX}"})
                await conn.execute(text("ANALYZE audit.audit_log"))
                plan = "\n".join(
                    r[0] for r in await conn.execute(text(f"EXPLAIN (COSTS OFF) {merkle.PROOF_SQL}"), {"id": last})
                )
                assert INDEX in plan, plan
                plan = "\n".join(
                    r[0] for r in await conn.execute(text(f"EXPLAIN (COSTS OFF) {AUDIT_OF_READ_SQL}"), {"r": last})
                )
                assert INDEX in plan, plan
                named = (await conn.execute(text(AUDIT_OF_READ_SQL), {"r": last})).all()
                assert [row.seq for row in named] == [seq]
                found = await merkle.read_inclusion_proof(conn, last)
                assert found is not None and (found["seq"], found["count"]) == (seq, 50)
                assert await merkle.read_inclusion_proof(conn, str(uuid.uuid4())) is None
            finally:
                await tx.rollback()
    finally:
        await engine.dispose()

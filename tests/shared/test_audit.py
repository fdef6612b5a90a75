import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared import audit
from shared.auth import Principal
from tests.support.pg import create_test_database, drop_database


async def test_chain_holds_and_a_tampered_row_is_found(pg_maintenance_url: str) -> None:
    import asyncio

    from alpr.migrate import upgrade

    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    engine = create_async_engine(url)
    try:
        await asyncio.to_thread(upgrade, url)
        officer = Principal(subject="u-1", roles=frozenset({"officer"}), agency="MN0271200")
        async with AsyncSession(engine) as session:
            for n in range(5):
                await audit.record(
                    session,
                    service="access",
                    action="reads.search",
                    principal=officer,
                    object_ids=[str(uuid.uuid4())],
                    case_number=f"C-{n}",
                    record_count=n,
                    details={"plate": "ABC1*"},
                )
            await session.commit()

        async with engine.connect() as conn:
            report = await audit.verify_chain(conn)
        assert report.ok and report.entries == 5

        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text("UPDATE audit.audit_log SET outcome = 'denied' WHERE seq = 3"))
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError, match="append-only"):
                await conn.execute(text("DELETE FROM audit.audit_log WHERE seq = 3"))

        # Someone with the owner's powers switches the guard off and edits history: verify finds it.
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit.audit_log DISABLE TRIGGER audit_log_append_only"))
            await conn.execute(text("UPDATE audit.audit_log SET record_count = 999 WHERE seq = 3"))
        async with engine.connect() as conn:
            report = await audit.verify_chain(conn)
        assert not report.ok and report.first_broken_seq == 3
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)

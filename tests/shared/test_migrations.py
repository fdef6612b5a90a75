from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alpr.migrate import downgrade, upgrade
from tests.support.pg import create_test_database, drop_database


async def _state(url: str) -> tuple[str, set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            tables = {
                f"{r.table_schema}.{r.table_name}"
                for r in await conn.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_schema IN ('access','ingest','recognition','hotlist','audit')"
                    )
                )
            }
    finally:
        await engine.dispose()
    return version, tables


async def test_migrations_apply_on_empty_database_and_are_idempotent(pg_maintenance_url: str) -> None:
    import asyncio

    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    try:
        await asyncio.to_thread(upgrade, url)
        version, tables = await _state(url)
        assert "audit.audit_log" in tables

        await asyncio.to_thread(upgrade, url)  # a second run changes nothing
        assert await _state(url) == (version, tables)

        await asyncio.to_thread(downgrade, url, "base")
        await asyncio.to_thread(upgrade, url)
        assert await _state(url) == (version, tables)
    finally:
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)

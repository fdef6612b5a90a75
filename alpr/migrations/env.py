"""Alembic environment: one history for the whole database, run on asyncpg."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import alpr.models  # noqa: F401 - registers every service's tables on the metadata
from shared.db import SERVICE_SCHEMAS, metadata

config = context.config


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "schema":
        return name in SERVICE_SCHEMAS
    return True


def _run(connection: Connection) -> None:
    role = config.attributes.get("role")
    if role:
        # Migrations run as the owner role: the services' roles own nothing (alpr/roles.py).
        quoted = role.replace('"', '""')
        connection.exec_driver_sql(f'SET ROLE "{quoted}"')
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_schemas=True,
        include_name=_include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())

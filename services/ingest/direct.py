"""The read path's per-batch statements straight through asyncpg, on a connection of the SQLAlchemy pool.

SQLAlchemy's execution layer cost ~0.4 ms of CPU per statement here, more than asyncpg's own work: its parameter
handling visits every element of the array parameters these statements take (a column per array, a read per
element), ~250 checks for a batch of five. The group commit's INSERT of five reads took 0.83 ms of ingest CPU
through `AsyncConnection.execute` and 0.30 ms through asyncpg (microbenchmark, 400 batches; issue 18).

What stays SQLAlchemy's: the pool (checkout, reset, invalidation) and the errors: a failure is the `DBAPIError`
SQLAlchemy would raise, `connection_invalidated` set (and the connection dropped from the pool) when the connection
was lost, so callers' retry and poison rules (`once_more_if_dropped`, `is_poison`) read it as before."""

from __future__ import annotations

import functools
import re
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_NAME = re.compile(r"(?<![:\w]):(\w+)")  # `:name`, not a `::type` cast


@functools.lru_cache(maxsize=32)
def positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with its `:name` parameters as asyncpg's `$n`, and the names in `$n` order."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return _NAME.sub(number, sql), tuple(names)


async def fetch(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> list[Any]:
    """The rows (asyncpg records) of one statement, run outside a transaction block (its own transaction,
    committed when it returns, as SQLAlchemy's AUTOCOMMIT runs it)."""
    query, names = positional(sql)
    args = [params[n] for n in names]
    async with engine.connect() as conn:
        fairy = await conn.get_raw_connection()
        try:
            return list(await fairy.driver_connection.fetch(query, *args))  # type: ignore[union-attr]
        except Exception as exc:
            raise await _as_sqlalchemy_error(engine, conn, fairy.dbapi_connection, sql, params, exc) from exc


async def _as_sqlalchemy_error(
    engine: AsyncEngine, conn: AsyncConnection, adapted: Any, sql: str, params: dict[str, Any], exc: Exception
) -> Exception:
    dialect = conn.dialect
    error: Exception = exc
    try:
        adapted._handle_exception(exc)  # raises asyncpg's error as the dialect's DBAPI error class
    except Exception as translated:  # noqa: BLE001 - the translation is the point
        error = translated
    dbapi_error = dialect.loaded_dbapi.Error
    if not isinstance(error, dbapi_error):
        return error  # not the database's (a value asyncpg could not encode): as it is
    lost = bool(dialect.is_disconnect(error, adapted, None))
    if lost:
        # As SQLAlchemy does on a disconnect: this connection closed, and the pool's others not trusted either
        # (a restart killed them all), so the caller's one retry gets a fresh connection.
        await conn.invalidate()
        await engine.dispose(close=False)
    wrapped: Exception = DBAPIError.instance(
        sql, params, error, dbapi_error, connection_invalidated=lost, dialect=dialect
    )
    return wrapped

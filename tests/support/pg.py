"""A real PostgreSQL for tests: TEST_DATABASE_URL's server when set, else the embedded one."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from alpr.embedded import ensure_database, start_server
from alpr.roles import role_names


def server_url(tmp_dir: Path) -> tuple[str, Any]:
    """A maintenance URL (database `postgres`/`test`) and the embedded server handle, if one was started."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url, None
    server = start_server(tmp_dir / "pg")
    return server.get_uri("postgres"), server


def with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + (f"?{query}" if query else "")


def _connect_kwargs(url: str) -> dict[str, Any]:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url.replace("+asyncpg", ""))
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    return {
        "host": host,
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "database": parts.path.lstrip("/") or "postgres",
    }


def create_test_database(maintenance_url: str) -> str:
    """A fresh database per test run, so parallel runs on one server never meet."""
    name = f"alpr_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(ensure_database(maintenance_url, name))
    return with_database(maintenance_url, name)


def drop_database(maintenance_url: str, database_url: str) -> None:
    name = _connect_kwargs(database_url)["database"]

    async def _drop() -> None:
        conn = await asyncpg.connect(**_connect_kwargs(maintenance_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            # Its roles (alpr/roles.py) go with it: roles are cluster-wide and would pile up run after run.
            for role in role_names(name).values():
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()

    asyncio.run(_drop())

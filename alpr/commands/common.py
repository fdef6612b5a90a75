"""What the subcommands share: the database a command works on.

The embedded server is started synchronously (pg_ctl, then CREATE DATABASE on a loop of its own), so it is resolved
here, before a command enters its event loop; the commands' coroutines only read `settings.database_url`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from shared.settings import Settings


def database_url(settings: Settings, *, migrate: bool = True) -> str:
    """The configured database, else the embedded one in the data folder: joined when `alpr up` holds it (it keeps
    running after the command), started for this command otherwise (it stops when the command exits). The embedded
    database is migrated first, so the CLI works on a data folder the system has never run on."""
    if settings.database_url:
        return settings.database_url
    from alpr.embedded import embedded_database_url
    from alpr.roles import prepare_database, role_passwords

    url, _server = embedded_database_url(settings.data_dir)
    if migrate:
        # As `alpr up` does: the owner and service roles, then the migrations as the owner.
        given = {k: v.get_secret_value() for k, v in settings.db_role_passwords.items()}
        prepare_database(url, role_passwords(settings.data_dir, given))
    return url


def with_database(settings: Settings) -> Settings:
    """`settings` with the database resolved. Call it outside any running event loop."""
    return settings.model_copy(update={"database_url": database_url(settings)})


def run_json(
    settings: Settings,
    work: Callable[[Any], Awaitable[Any]],
    *,
    refusal_as_json: bool = False,
    after_commit: Callable[[Any, Settings], Awaitable[None]] | None = None,
) -> int:
    """`work(session)` in one transaction (its audit entry with it); prints the result as JSON and returns 0, or
    prints the refusal (`{"error": ...}` on stdout, else `refused: ...` on stderr) and returns 1, committing nothing.
    `after_commit(session, settings)` runs once the transaction has committed."""
    from shared.db import create_engine, create_sessionmaker
    from shared.errors import AppError

    settings = with_database(settings)

    async def _go() -> int:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                try:
                    out = await work(session)
                except AppError as exc:
                    if refusal_as_json:
                        print(json.dumps({"error": exc.detail}))
                    else:
                        print(f"refused: {exc.detail}", file=sys.stderr)
                    return 1
                await session.commit()
                if after_commit is not None:
                    await after_commit(session, settings)
        finally:
            await engine.dispose()
        print(json.dumps(out, indent=2, default=str))
        return 0

    return asyncio.run(_go())

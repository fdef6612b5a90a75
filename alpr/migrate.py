"""Run the Alembic migrations programmatically (the runner and `alpr migrate`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, role: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if role:
        # env.py switches to this role first, so everything the migrations make belongs to it (alpr/roles.py).
        cfg.attributes["role"] = role
    return cfg


def upgrade(database_url: str, revision: str = "head", *, role: str | None = None) -> None:
    command.upgrade(alembic_config(database_url, role), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so keep it off ours.
    await asyncio.to_thread(upgrade, database_url, revision)

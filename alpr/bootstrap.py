"""First-run set-up the runner does: one service client per calling service, whose tokens it calls the others with."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from services.access import identity
from shared.db import create_sessionmaker
from shared.service_callers import CALLING_SERVICES, CLIENT_NAME_PREFIX


def service_client_file(service: str) -> str:
    return f"service-{service}.json"


def write_private(path: Path, data: str) -> None:
    # Owner-only from the first byte: the secret never sits in a world-readable file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


async def _ensure(database_url: str, service: str, saved: dict[str, str] | None) -> tuple[str, str, bool]:
    engine = create_async_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            if saved and await identity.client_secret_valid(session, saved["client_id"], saved["client_secret"]):
                return saved["client_id"], saved["client_secret"], False
            client, secret = await identity.create_client(
                session, name=f"{CLIENT_NAME_PREFIX}{service}", role="service"
            )
            await session.commit()
            return client.client_id, secret, True
    finally:
        await engine.dispose()


def ensure_service_clients(database_url: str, data_dir: Path) -> dict[str, tuple[str, str]]:
    """Each calling service's client, saved in the data folder (`service-<name>.json`, mode 0600), created on first
    run; a restart reuses it. One key per service: a stolen one reaches only that service's calls."""
    out: dict[str, tuple[str, str]] = {}
    for service in CALLING_SERVICES:
        path = data_dir / service_client_file(service)
        saved = json.loads(path.read_text()) if path.is_file() else None
        client_id, secret, created = asyncio.run(_ensure(database_url, service, saved))
        if created:
            write_private(path, json.dumps({"client_id": client_id, "client_secret": secret}))
        out[service] = (client_id, secret)
    return out

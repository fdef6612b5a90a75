"""`alpr up`, `alpr migrate`, `alpr keys rotate`, `alpr audit verify`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from alpr.commands.common import database_url
from shared.settings import Settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from alpr.runner import up

    return up(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from alpr.migrate import upgrade

    upgrade(database_url(settings, migrate=False), args.revision)
    print(f"migrated to {args.revision}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from shared.keys import generate_key

    key = generate_key(settings.keys_dir, settings.jwt_algorithm)
    print(f"new signing key {key.kid}; older keys still verify until removed")
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.audit import verify_chain

    url = database_url(settings)

    async def _verify() -> int:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                report = await verify_chain(conn)
        finally:
            await engine.dispose()
        if report.ok:
            print(f"audit chain intact: {report.entries} entries")
            return 0
        print(f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason}")
        return 2

    return asyncio.run(_verify())


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="start PostgreSQL (embedded unless configured) and the four services")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("migrate", help="apply the database migrations")
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("rotate", help="make a new signing key")
    p.set_defaults(func=cmd_keys_rotate)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check the audit log's hash chain")
    p.set_defaults(func=cmd_audit_verify)

"""`alpr up`, `alpr migrate`, `alpr keys rotate`, `alpr audit verify`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from alpr.commands.common import database_url
from alpr.settings_file import add_flags
from shared.settings import Settings


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from alpr.runner import up

    return up(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from alpr.migrate import upgrade
    from alpr.roles import prepare_database, role_passwords

    if args.revision != "head" or args.no_roles:
        upgrade(database_url(settings, migrate=False), args.revision)
    else:
        # The services' roles too (compose's `migrate` job); their passwords from ALPR_DB_ROLE_PASSWORDS.
        given = {k: v.get_secret_value() for k, v in settings.db_role_passwords.items()}
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        prepare_database(database_url(settings, migrate=False), role_passwords(settings.data_dir, given))
    from shared.secret_files import url_signing_secret

    url_signing_secret(settings, create=True)  # the deployment step makes the link-signing secret, once
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
    from shared.audit_seal import (
        key_path,
        load_checkpoints,
        load_keys,
        load_latest,
        publish_checkpoint,
        verify_sealed,
    )
    from shared.storage import create_store

    url = database_url(settings)

    async def _verify() -> int:
        engine = create_async_engine(url)
        try:
            if not key_path(settings).is_file():
                print(f"audit key {key_path(settings)} not found: keyed seals and checkpoints NOT checked")
                async with engine.connect() as conn:
                    plain = await verify_chain(conn)
                if plain.ok:
                    print(f"audit chain intact (unkeyed check only): {plain.entries} entries")
                    return 0
                print(f"audit chain BROKEN at entry {plain.first_broken_seq}: {plain.reason}")
                return 2
            store = create_store(settings)
            # The last round's count first, then seal and publish the tail: an entry cut since then shows.
            latest = await load_latest(store)
            before = [] if latest else await load_checkpoints(store)
            await publish_checkpoint(engine, store, load_keys(settings))
            checkpoints = await load_checkpoints(store)
            async with engine.connect() as conn:
                report = await verify_sealed(conn, load_keys(settings), checkpoints, latest, before)
        finally:
            await engine.dispose()
        if report.ok:
            print(
                f"audit chain intact: {report.chain.entries} entries, {report.sealed} sealed, "
                f"{report.checkpoints} checkpoints hold"
            )
            return 0
        print(f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason}")
        return 2

    return asyncio.run(_verify())


def cmd_audit_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.audit_seal import load_keys, publish_checkpoint
    from shared.storage import create_store

    async def _checkpoint() -> int:
        engine = create_async_engine(database_url(settings))
        try:
            checkpoint = await publish_checkpoint(engine, create_store(settings), load_keys(settings, create=True))
        finally:
            await engine.dispose()
        print(f"checkpoint at entry {checkpoint['count']}" if checkpoint else "no new entries: no new checkpoint")
        return 0

    return asyncio.run(_checkpoint())


def register(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="start PostgreSQL (embedded unless configured) and the four services",
        usage="alpr up [--<setting> VALUE ...]",
        description="Start PostgreSQL (embedded unless configured), the four services and the agents' importer. "
        "Settings: these flags, then the environment, then the data folder's saved alpr.env, then .env; what it "
        "runs with is saved in alpr.env again (docs/settings.md).",
    )
    add_flags(p)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("migrate", help="apply the database migrations")
    p.add_argument("--revision", default="head")
    p.add_argument("--no-roles", action="store_true", help="migrate only; leave the services' database roles alone")
    p.set_defaults(func=cmd_migrate)

    keys = sub.add_parser("keys", help="token signing keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("rotate", help="make a new signing key")
    p.set_defaults(func=cmd_keys_rotate)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("verify", help="check the audit log's hash chain")
    p.set_defaults(func=cmd_audit_verify)
    p = audit.add_parser("checkpoint", help="seal new audit entries and publish a signed checkpoint now")
    p.set_defaults(func=cmd_audit_checkpoint)

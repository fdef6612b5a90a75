"""`alpr purge [--dry-run]` and `alpr retention check`: the retention purge by hand (each service also runs it on
its schedule) and the check that nothing past the period survives unheld. Prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import json
from typing import Any

from alpr.commands.common import with_database
from shared.settings import Settings


async def run_purge(settings: Settings, *, dry_run: bool, actor: str, max_days: int | None = None) -> dict[str, Any]:
    from services.hotlist import retention as hits
    from services.ingest import retention as reads
    from services.ingest.holds import held_among
    from shared.db import create_engine
    from shared.storage import create_store

    engine = create_engine(settings)
    try:
        store = create_store(settings)
        r = await reads.purge(engine, store, settings, actor=actor, trigger="cli", dry_run=dry_run, max_days=max_days)
        # The operator's CLI sits above both services: it asks ingest's holds directly, not over HTTP.
        held = functools.partial(held_among, engine)
        h = await hits.purge(engine, settings, held_reads=held, actor=actor, trigger="cli", dry_run=dry_run)
    finally:
        await engine.dispose()
    return {"dry_run": dry_run, "reads": r.as_dict(), "hits": h.as_dict()}


async def run_check(settings: Settings) -> dict[str, Any]:
    from services.hotlist import retention as hits
    from services.ingest import retention as reads
    from services.ingest.holds import held_among
    from shared.db import create_engine
    from shared.storage import create_store

    engine = create_engine(settings)
    try:
        r = await reads.check(engine, create_store(settings), settings)
        h = await hits.check(engine, settings, held_reads=functools.partial(held_among, engine))
    finally:
        await engine.dispose()
    return {"ok": bool(r["ok"] and h["ok"]), "reads": r, "hits": h}


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    actor = f"cli:{getpass.getuser()}"
    report = asyncio.run(run_purge(with_database(settings), dry_run=args.dry_run, actor=actor, max_days=args.max_days))
    print(json.dumps(report, indent=2, default=str))
    return 3 if report["reads"]["status"] == "busy" else 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(run_check(with_database(settings)))
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


def register(sub: Any) -> None:
    p = sub.add_parser("purge", help="destroy reads, photos and hits past retention (not held)")
    p.add_argument("--dry-run", action="store_true", help="say what would go; destroy nothing")
    p.add_argument("--max-days", type=int, default=None, help="stop after this many days (a backlog over runs)")
    p.set_defaults(func=cmd_purge)
    r = sub.add_parser("retention", help="retention checks").add_subparsers(dest="retention_command", required=True)
    c = r.add_parser("check", help="list reads, objects and hits past retention and not held (exit 1 if any)")
    c.set_defaults(func=cmd_check)

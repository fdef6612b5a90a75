"""`alpr hotlist sync`: fetch and load the BCA hot list now (the hotlist service also does it on its schedule)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from typing import Any

from alpr.commands.common import with_database
from shared.settings import Settings


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from services.hotlist.sync import SyncFailed, sync_once
    from shared.db import create_engine

    settings = with_database(settings)

    async def _sync() -> int:
        engine = create_engine(settings)
        try:
            result = await sync_once(
                engine, settings, trigger="cli", accept_drop=args.accept_drop, actor=f"cli:{getpass.getuser()}"
            )
        except SyncFailed as exc:
            print(json.dumps({"outcome": exc.outcome, "error": str(exc), **exc.details}, indent=2))
            return 1
        finally:
            await engine.dispose()
        if result.outcome == "busy":
            print(json.dumps({"outcome": "busy", "error": "another sync is running"}))
            return 3
        report = {
            "outcome": result.outcome,
            "version": result.version,
            "entries": result.entries,
            "bad_rows": result.bad_rows,
            "bad": result.bad[: args.show_bad],
            "unknown_codes": result.unknown_codes,
            "seconds": result.seconds,
        }
        print(json.dumps(report, indent=2))
        return 0

    return asyncio.run(_sync())


def register(sub: Any) -> None:
    hotlist = sub.add_parser("hotlist", help="the BCA hot list").add_subparsers(dest="hotlist_command", required=True)
    p = hotlist.add_parser("sync", help="fetch and load the hot list from ALPR_HOTLIST_SOURCE_URL now")
    p.add_argument("--show-bad", type=int, default=50, help="how many bad rows to print")
    p.add_argument(
        "--accept-drop",
        action="store_true",
        help="load the extract even with far fewer entries than the list in force (ALPR_HOTLIST_MAX_DROP_SHARE); "
        "recorded in the audit log under your name",
    )
    p.set_defaults(func=cmd_sync)

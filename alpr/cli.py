"""`alpr`: the operators' command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from alpr.settings_file import cli_settings, up_settings
from shared.logs import configure_logging
from shared.settings import Settings, get_settings

# One module per area under alpr/commands, each with register(subparsers).
COMMAND_MODULES = [
    "alpr.commands.core",
    "alpr.commands.access",
    "alpr.commands.hotlist",
    "alpr.commands.recognition",
    "alpr.commands.agents",
    "alpr.commands.agencies",
    "alpr.commands.retention",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpr", description="ALPR back office: operator commands")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `alpr up` saved the settings it ran with in the data folder (its flags included): it reads them back, and the
    # other commands use them too.
    settings = up_settings(args) if args.command == "up" else cli_settings(get_settings())
    configure_logging(settings.log_level, json=settings.log_json, service="cli")
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return func(args, settings)


if __name__ == "__main__":
    sys.exit(main())

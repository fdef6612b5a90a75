"""The settings `alpr up` ran with, saved in the data folder, so that `alpr …` in another terminal (or after a stop)
works on the same system without repeating every `ALPR_*` variable; and `alpr up`'s flags, one per setting.

Precedence for `alpr up`: its flags, then its environment, then this file, then `.env`, then the defaults; what it
ran with is saved again. For the other commands: their environment, then this file, then `.env`, then the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.settings import Settings

SETTINGS_FILE = "alpr.env"
_FLAG_PREFIX = "setting_"  # argparse destinations of `alpr up`'s flags, apart from the subcommand's own


def _text(value: object) -> str:
    """A setting as its `ALPR_*` variable's text (JSON for lists and maps, as pydantic-settings reads them)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, set | frozenset):
        value = sorted(value)
    if isinstance(value, tuple | list | dict):
        return json.dumps(value, default=lambda v: v.get_secret_value() if isinstance(v, SecretStr) else str(v))
    return str(value)


def _quoted(value: object) -> str:
    return "'" + _text(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _given(settings: Settings) -> dict[str, Any]:
    """The settings the operator gave (flags, environment, the saved file or `.env`), not the defaults."""
    out: dict[str, Any] = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "data_dir":
            value = Path(value).resolve()
        out[name] = value
    return out


def write(settings: Settings) -> Path:
    """Every setting the operator gave, as `ALPR_NAME='value'` lines, owner-only (it may hold credentials). The
    embedded database's URL is not one of them: each command finds the server in the data folder."""
    from alpr.bootstrap import write_private

    lines = ["# Written by `alpr up`: the settings it ran with. `alpr` reads it; your environment overrides it;"]
    lines.append("# `alpr up --<setting> VALUE` overrides both and is saved here.")
    lines += [f"ALPR_{name.upper()}={_quoted(value)}" for name, value in _given(settings).items()]
    path = settings.data_dir / SETTINGS_FILE
    write_private(path, "\n".join(lines) + "\n")
    return path


def cli_settings(settings: Settings) -> Settings:
    """`settings` (environment and `.env`) completed with what the runner saved in the same data folder."""
    saved = settings.data_dir / SETTINGS_FILE
    if not saved.is_file():
        return settings
    return Settings(_env_file=(".env", saved))  # type: ignore[call-arg]


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, `--access-port` for `ALPR_ACCESS_PORT`, its value written as the variable's would be."""
    group = parser.add_argument_group("settings (each overrides its ALPR_* variable and the saved alpr.env)")
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else "***" if isinstance(default, SecretStr) else _text(default)
        group.add_argument(
            f"--{name.replace('_', '-')}",
            dest=_FLAG_PREFIX + name,
            metavar="VALUE",
            help=f"ALPR_{name.upper()} (default: {shown or 'empty'})",
        )


def up_settings(args: argparse.Namespace) -> Settings:
    """The settings `alpr up` runs with: its flags over its environment over the data folder's saved `alpr.env` over
    `.env`. The flags go into this process's environment, which the services and the importer inherit, and so do
    the saved settings: the services read no `alpr.env` themselves."""
    flags = {
        key.removeprefix(_FLAG_PREFIX): value
        for key, value in vars(args).items()
        if key.startswith(_FLAG_PREFIX) and value is not None
    }
    for name, value in flags.items():
        os.environ[f"ALPR_{name.upper()}"] = value
    settings = cli_settings(Settings())
    for name, value in _given(settings).items():
        os.environ.setdefault(f"ALPR_{name.upper()}", _text(value))
    return settings

"""The settings `alpr up` ran with, saved in the data folder, so that `alpr …` in another terminal (or after a stop)
works on the same system without repeating every `ALPR_*` variable.

Precedence for the CLI: its own environment, then this file, then `.env`, then the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from shared.settings import Settings

SETTINGS_FILE = "alpr.env"


def _quoted(value: object) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, tuple | list | dict):
        text = json.dumps(value)
    else:
        text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write(settings: Settings) -> Path:
    """Every setting the operator gave (environment or `.env`), as `ALPR_NAME='value'` lines, owner-only (it may hold
    credentials). The embedded database's URL is not one of them: each command finds the server in the data folder."""
    from alpr.bootstrap import write_private

    lines = ["# Written by `alpr up`: the settings it ran with. `alpr` reads it; your environment overrides it."]
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "data_dir":
            value = Path(value).resolve()
        lines.append(f"ALPR_{name.upper()}={_quoted(value)}")
    path = settings.data_dir / SETTINGS_FILE
    write_private(path, "\n".join(lines) + "\n")
    return path


def cli_settings(settings: Settings) -> Settings:
    """`settings` (environment and `.env`) completed with what the runner saved in the same data folder."""
    saved = settings.data_dir / SETTINGS_FILE
    if not saved.is_file():
        return settings
    return Settings(_env_file=(".env", saved))  # type: ignore[call-arg]

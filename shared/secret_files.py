"""Secrets a fresh install makes for itself, beside its token keys (never a public default).

The image-link signing secret: `ALPR_URL_SIGNING_SECRET` when set, else `<keys folder>/url-signing.key` (0600 in
the 0700 keys folder), made by the deployment step (`alpr up`, `alpr migrate`) and, outside production, on first
use. In production a service refuses to start without one: a missing file is never made at a service's start,
where two replicas would each make their own.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.settings import Settings

URL_SIGNING_FILE = "url-signing.key"


def url_signing_path(settings: Settings) -> Path:
    return settings.keys_dir / URL_SIGNING_FILE


def url_signing_secret(settings: Settings, *, create: bool | None = None) -> str:
    """The link-signing secret. `create`: make the file when missing (default: outside production only)."""
    if settings.url_signing_secret is not None:
        return settings.url_signing_secret.get_secret_value()
    path = url_signing_path(settings)
    if create is None:
        create = settings.environment != "production"
    if not path.is_file():
        if not create:
            raise RuntimeError(
                f"no URL signing secret: set ALPR_URL_SIGNING_SECRET or run `alpr migrate` to make {path}"
            )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # O_EXCL: of two processes making it at once, one writes and the other reads what it wrote.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    value = path.read_text().strip()
    if len(value) < 32:
        raise RuntimeError(f"{path} holds no usable secret (fewer than 32 characters)")
    return value

"""What the subcommands share."""

from __future__ import annotations

from shared.settings import Settings


def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one (started for this command; it stops when the command exits)."""
    if settings.database_url:
        return settings.database_url
    from alpr.embedded import embedded_database_url

    url, _server = embedded_database_url(settings.data_dir)
    return url

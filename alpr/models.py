"""Every table of every service, imported so Alembic sees the whole schema."""

from shared import audit  # noqa: F401

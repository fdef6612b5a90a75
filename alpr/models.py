"""Every table of every service, imported so Alembic sees the whole schema."""

from services.ingest import models as ingest_models  # noqa: F401
from shared import audit  # noqa: F401

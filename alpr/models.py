"""Every table of every service, imported so Alembic sees the whole schema."""

from services.hotlist import models as hotlist_models  # noqa: F401
from shared import audit  # noqa: F401

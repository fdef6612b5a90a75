"""Every table of every service, imported so Alembic sees the whole schema."""

from services.access import models as access_models  # noqa: F401
from services.access import notice_models as access_notice_models  # noqa: F401
from services.hotlist import fact_models as hotlist_fact_models  # noqa: F401
from services.hotlist import models as hotlist_models  # noqa: F401
from services.hotlist import retention_models as hotlist_retention_models  # noqa: F401
from services.ingest import fact_models as ingest_fact_models  # noqa: F401
from services.ingest import models as ingest_models  # noqa: F401
from services.ingest import retention_models as ingest_retention_models  # noqa: F401
from services.ingest import suspension_models as ingest_suspension_models  # noqa: F401
from services.ingest.agents import models as agent_models  # noqa: F401
from shared import audit  # noqa: F401

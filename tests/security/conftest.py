"""Two agencies in one back office: the wired services (tests/integration) and the access app (tests/access)."""

from tests.access.conftest import access, access_settings  # noqa: F401  (fixtures)
from tests.integration.conftest import bca_server, system  # noqa: F401  (fixtures)

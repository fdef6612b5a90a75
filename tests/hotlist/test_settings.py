"""Hotlist settings: production refuses a hot-list source without TLS."""

import pytest
from pydantic import ValidationError

from shared.settings import Settings

PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql://alpr@db/alpr",
    "url_signing_secret": "kW3v9-QpZt7xR2mYb8LcN4sHd6JfGa1e",
}


def test_production_requires_an_https_source() -> None:
    with pytest.raises(ValidationError, match="must be https"):
        Settings(**PRODUCTION, hotlist_source_url="http://bca.example/hotlist.zip")
    ok = Settings(**PRODUCTION, hotlist_source_url="https://bca.example/hotlist.zip")
    assert ok.hotlist_source_url == "https://bca.example/hotlist.zip"

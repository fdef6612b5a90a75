"""The policy's limits as settings with bounds: production refuses a retention period over 60 days."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings

PROD = {
    "environment": "production",
    "url_signing_secret": "q7Vd2LmZ9xRk4TfWp8Ns3HjYc6Gb1QeU",  # strong enough for production
    "database_url": "postgresql://alpr@db/alpr",
}


def test_retention_over_60_days_refused_in_production() -> None:
    assert Settings(**PROD, retention_days=60).retention_days == 60  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at most 60"):
        Settings(**PROD, retention_days=61)  # type: ignore[arg-type]
    # Development may shorten or lengthen it to try things; a case keeps data through a hold, never this setting.
    assert Settings(environment="development", retention_days=90).retention_days == 90


def test_alert_categories_bounded_to_the_policy_in_production() -> None:
    narrowed = frozenset({"stolen_vehicle", "amber_alert"})
    assert Settings(**PROD, hotlist_alert_categories=narrowed).hotlist_alert_categories == narrowed  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="may not alert on missing_person"):
        Settings(**PROD, hotlist_alert_categories=narrowed | {"missing_person"})  # type: ignore[arg-type]
    wider = Settings(environment="development", hotlist_alert_categories=narrowed | {"missing_person"})
    assert "missing_person" in wider.hotlist_alert_categories  # development may try things

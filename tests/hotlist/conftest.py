"""Hotlist test fixtures: the fake BCA server, settings pointing at it, tokens by role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from shared.settings import Settings
from tests.hotlist.bca import CREDENTIAL, FakeBca


@pytest.fixture(scope="session")
def bca() -> Iterator[FakeBca]:
    server = FakeBca()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hl_settings(settings: Settings, bca: FakeBca) -> Settings:
    bca.mode = "ok"
    return settings.model_copy(
        update={
            "hotlist_source_url": bca.url,
            "hotlist_source_credential": SecretStr(CREDENTIAL),
            "hotlist_source_timeout_s": 0.5,
            "hotlist_source_retries": 1,
            "hotlist_source_backoff_s": 0.01,
            "hotlist_sync_scheduled": False,
            "hotlist_poll_s": 0.05,
        }
    )


@pytest.fixture(scope="session")
def tokens(make_token):  # type: ignore[no-untyped-def]
    def auth(*roles: str, **claims: object) -> dict[str, str]:
        claims.setdefault("agency", "MN0271200")  # one agency unless a test says otherwise (tests/security: two)
        return {"Authorization": f"Bearer {make_token(roles=list(roles), **claims)}"}

    return auth

"""The small ones of issue 15: forwarding headers believed only from trusted proxies; production refuses weak
secrets; local photos and court orders owner-only; the public report cached per (agency, period) and limited; failed
authentications counted in metrics rather than written to the audit chain one by one."""

import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import text

from services.access import reports
from services.access.main import create_app
from services.hotlist.main import create_app as create_hotlist
from services.ingest.main import create_app as create_ingest
from shared.keys import SigningKey
from shared.settings import Settings
from shared.storage import LocalStore
from tests.access.conftest import AGENCY_ORI, CHEAP_ARGON2, Access, bearer
from tests.conftest import TokenFactory
from tests.support.apps import running

FORGED = {"X-Forwarded-For": "203.0.113.66", "X-Request-ID": "forged-request-id"}


async def _last_login(access: Access, auditor: str, actor: str) -> dict:  # type: ignore[type-arg]
    entries = await access.audit(auditor, action="auth.login", actor=actor)
    return entries[-1]


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1/32"]])
async def test_forwarding_headers_are_believed_only_from_trusted_proxies(
    access_settings: Settings, make_token: TokenFactory, trusted: list[str]
) -> None:
    app = create_app(access_settings.model_copy(update={"trusted_proxies": trusted}))
    async with running(app) as client:  # the test client's address is 127.0.0.1
        access = Access(app, client)
        officer = await access.person("officer")
        data = {"grant_type": "password", "username": officer.badge, "password": "wrong password!"}
        assert (await client.post("/v1/token", data=data, headers=FORGED)).status_code == 401
        entry = await _last_login(
            access, make_token(subject="aud-proxy", roles=["auditor"], agency=AGENCY_ORI), officer.id
        )
    if trusted:
        assert entry["source_ip"] == "203.0.113.66" and entry["request_id"] == "forged-request-id"
    else:
        assert entry["source_ip"] == "127.0.0.1"
        assert entry["request_id"] != "forged-request-id"
        assert entry["details"]["claimed_request_id"] == "forged-request-id"  # kept as a claim, not a fact


@pytest.mark.parametrize(
    "weak", ["short-but-real-9f3k", "a" * 64, "abababababababababababababababab"], ids=["short", "one", "two"]
)
def test_production_refuses_weak_secrets(weak: str) -> None:
    strong = "kW3v9-QpZt7xR2mYb8LcN4sHd6JfGa1e"
    base = {"environment": "production", "database_url": "postgresql://db/alpr", "password_time_cost": 3}
    Settings(**base, url_signing_secret=strong, service_client_secret=strong)
    for field in ("url_signing_secret", "service_client_secret"):
        with pytest.raises(ValidationError, match="too weak"):
            Settings(**{**base, "url_signing_secret": strong, field: weak})
    with pytest.raises(ValidationError, match="too weak"):
        Settings(**base, url_signing_secret=strong, db_role_passwords={"ingest": weak})


async def test_local_files_are_owner_only_in_owner_only_folders(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects", signing_secret="x" * 32)
    for key in ("reads/2026/11/29/car-1/read.jpg", "court-orders/req-1/order.pdf"):
        await store.put(key, b"data")
        path = tmp_path / "objects" / key
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, key
        folder = path.parent
        while folder != tmp_path:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
            folder = folder.parent


async def test_the_public_report_is_cached_per_agency_and_period_and_limited(
    access_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed = 0
    real = reports.log_of_use

    async def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal computed
        computed += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(reports, "log_of_use", counting)
    ingest = create_ingest(access_settings, run_worker=False)
    hotlist = create_hotlist(access_settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        app = create_app(
            access_settings.model_copy(update={**CHEAP_ARGON2, "public_report_limit": "3/minute"}),
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        await _public_report_cached_and_limited(app, lambda: computed)


async def _public_report_cached_and_limited(app: FastAPI, computed: Callable[[], int]) -> None:
    async with running(app) as client:
        month = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "agency": AGENCY_ORI}
        first = await client.get("/v1/public/log-of-use", params=month)
        assert first.status_code == 200, first.text
        assert first.json()["agency"] == AGENCY_ORI
        for _ in range(5):  # the same period again: the kept answer, no new database work, not limited
            again = await client.get("/v1/public/log-of-use", params=month)
            assert again.status_code == 200 and again.json()["totals"] == first.json()["totals"]
        assert computed() == 1
        # Kept per (agency, period): another agency's log of the same month is its own computation.
        other = await client.get("/v1/public/log-of-use", params={**month, "agency": "MN0279999"})
        assert other.status_code == 200 and other.json()["agency"] == "MN0279999"
        assert computed() == 2
        unnamed = await client.get("/v1/public/log-of-use", params={k: month[k] for k in ("start", "end")})
        assert unnamed.status_code == 422 and "agency" in unnamed.text  # whose log it is must be said
        answers = [
            (await client.get("/v1/public/log-of-use", params={"start": f"2025-{m:02d}-01T00:00:00Z",
                                                               "end": f"2025-{m + 1:02d}-01T00:00:00Z",
                                                               "agency": AGENCY_ORI}))
            for m in range(1, 4)
        ]  # fmt: skip
        assert [a.status_code for a in answers] == [200, 429, 429]
        assert int(answers[-1].headers["retry-after"]) > 0
        too_long = await client.get(
            "/v1/public/log-of-use",
            params={"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z", "agency": AGENCY_ORI},
        )
        assert too_long.status_code == 422


async def test_failed_authentications_are_counted_not_audited(
    access: Access, make_token: TokenFactory, foreign_key: SigningKey
) -> None:
    def count(reason: str) -> float:
        return REGISTRY.get_sample_value("alpr_auth_failures_total", {"service": "access", "reason": reason}) or 0

    async def audit_rows() -> int:
        async with access.app.state.engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM audit.audit_log"))).scalar_one())

    no_token, bad_token, rows = count("no_token"), count("bad_token"), await audit_rows()
    stranger = make_token(subject="x", roles=["admin"], key=foreign_key)
    for _ in range(3):
        assert (await access.client.get("/v1/users")).status_code == 401
        assert (await access.client.get("/v1/users", headers=bearer(stranger))).status_code == 401
        assert (await access.client.get("/v1/users", headers=bearer("not.a.token"))).status_code == 401
    assert count("no_token") - no_token == 3 and count("bad_token") - bad_token == 6
    assert await audit_rows() == rows  # none written for the refusals

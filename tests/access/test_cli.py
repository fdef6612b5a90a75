"""`alpr access ...` bootstraps identities that then log in through the API; `alpr audit verify` finds tampering."""

import asyncio
import io
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pyotp
import pytest
from jose import jwt
from sqlalchemy import text

from alpr.cli import main
from alpr.migrate import upgrade
from services.access.main import create_app
from shared.settings import Settings, get_settings
from tests.access.conftest import CHEAP_ARGON2, PASSWORD
from tests.conftest import TokenFactory
from tests.support.apps import running
from tests.support.pg import create_test_database, drop_database


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI on the session's database (other tests import this fixture)."""
    assert settings.database_url
    monkeypatch.setenv("ALPR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ALPR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ALPR_JWT_KEYS_DIR", str(settings.keys_dir))
    monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def cli_settings(settings: Settings, pg_maintenance_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A database of its own: the first administrator must be the first one whatever ran before on the session's."""
    url = create_test_database(pg_maintenance_url)
    upgrade(url)
    monkeypatch.setenv("ALPR_DATABASE_URL", url)
    monkeypatch.setenv("ALPR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ALPR_JWT_KEYS_DIR", str(settings.keys_dir))
    monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    try:
        yield settings.model_copy(update={"database_url": url})
    finally:
        get_settings.cache_clear()
        drop_database(pg_maintenance_url, url)


async def alpr(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code = await asyncio.to_thread(main, argv)
    return code, capsys.readouterr().out


async def test_cli_bootstraps_people_clients_and_training(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = cli_settings
    code, out = await alpr(
        ["access", "create-admin", "--username", "chief", "--name", "Chief", "--agency", "MN0271200",
         "--password-stdin"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0 and "user chief (admin)" in out
    with pytest.raises(SystemExit, match="administrator exists"):
        await alpr(
            ["access", "create-admin", "--username", "c2", "--name", "C2", "--agency", "MN0271200", "--password-stdin"],
            capsys, monkeypatch,
        )  # fmt: skip
    code, out = await alpr(
        ["access", "add-user", "--username", "jdoe", "--name", "J Doe", "--agency", "MN0271200", "--badge", "4411",
         "--role", "officer", "--totp", "--password-stdin"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0
    secret = re.search(r"TOTP secret (\w+)", out).group(1)  # type: ignore[union-attr]
    today = date.today()
    code, out = await alpr(
        ["access", "add-training", "--user", "4411", "--course", "ALPR 101",
         "--completed", (today - timedelta(days=1)).isoformat(),
         "--expires", (today + timedelta(days=364)).isoformat()],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0 and "current until" in out
    code, out = await alpr(
        ["access", "add-client", "--name", "BCA", "--role", "agency", "--agency-name", "Minnesota BCA",
         "--ori", "MNBCA0000"],
        capsys, monkeypatch,
    )  # fmt: skip
    client_id = re.search(r"client_id (\S+)", out).group(1)  # type: ignore[union-attr]
    client_secret = re.search(r"client_secret (\S+)", out).group(1)  # type: ignore[union-attr]

    async with running(create_app(settings.model_copy(update=CHEAP_ARGON2))) as client:
        resp = await client.post(
            "/v1/token",
            data={"grant_type": "password", "username": "4411", "password": PASSWORD, "totp": pyotp.TOTP(secret).now()},
        )
        assert resp.status_code == 200, resp.text
        claims = jwt.get_unverified_claims(resp.json()["access_token"])
        assert claims["badge"] == "4411" and claims["roles"] == ["officer"] and claims["trained_until"] > 0
        resp = await client.post(
            "/v1/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        assert resp.status_code == 200
        assert jwt.get_unverified_claims(resp.json()["access_token"])["agency"] == "MNBCA0000"


async def test_audit_verify_finds_a_tampered_row_and_auditors_see_it_over_the_api(
    settings: Settings,
    pg_maintenance_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_token: TokenFactory,
) -> None:
    # Its own database: a broken chain must not leak into other tests.
    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    try:
        await asyncio.to_thread(upgrade, url)
        own = settings.model_copy(update={"database_url": url, **CHEAP_ARGON2})
        monkeypatch.setenv("ALPR_DATABASE_URL", url)
        monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
        get_settings.cache_clear()
        app = create_app(own)
        async with running(app) as client:
            auditor = {"Authorization": f"Bearer {make_token(subject='aud-v', roles=['auditor'])}"}
            officer = {"Authorization": f"Bearer {make_token(subject='off-v', roles=['officer'])}"}
            assert (await client.get("/v1/audit", headers=officer)).status_code == 403
            for _ in range(3):  # entries to tamper with: the auditor's own queries
                assert (await client.get("/v1/audit", headers=auditor)).status_code == 200
            assert (await client.get("/v1/audit/verify", headers=auditor)).json()["ok"] is True
            code, out = await alpr(["audit", "verify"], capsys, monkeypatch)
            assert code == 0 and "intact" in out

            async with app.state.engine.begin() as conn:  # someone with the owner's powers edits history
                await conn.execute(text("ALTER TABLE audit.audit_log DISABLE TRIGGER audit_log_append_only"))
                await conn.execute(text("UPDATE audit.audit_log SET actor = 'someone-else' WHERE seq = 2"))
                await conn.execute(text("ALTER TABLE audit.audit_log ENABLE TRIGGER audit_log_append_only"))
            report = (await client.get("/v1/audit/verify", headers=auditor)).json()
            assert report["ok"] is False and report["first_broken_seq"] == 2
            code, out = await alpr(["audit", "verify"], capsys, monkeypatch)
            assert code == 2 and "BROKEN at entry 2" in out
    finally:
        get_settings.cache_clear()
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)

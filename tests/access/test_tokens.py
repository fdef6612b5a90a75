"""The token endpoint: password + TOTP, lock-out, rotating refresh tokens, idle sessions, logout, client credentials."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from jose import jwt
from sqlalchemy import text

from shared.auth import TokenVerifier
from shared.settings import Settings
from tests.access.conftest import AGENCY_ORI, PASSWORD, Access, bearer
from tests.conftest import TokenFactory


async def test_officer_logs_in_with_badge_and_the_token_carries_the_contract_claims(
    access: Access, access_settings: Settings
) -> None:
    officer = await access.person("officer")
    resp = await access.login(officer)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == access_settings.access_token_ttl_s
    assert body["refresh_token"] and resp.headers["cache-control"] == "no-store"
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    principal = await TokenVerifier(access_settings).verify(body["access_token"])
    assert principal.subject == officer.id and principal.roles == {"officer"}
    assert principal.badge == officer.badge and principal.agency == officer.agency
    assert principal.session_id and principal.token_id
    assert principal.training_current()
    untrained = await access.person("officer", trained=False)
    claims = jwt.get_unverified_claims(await access.token(untrained))
    assert "trained_until" not in claims


async def test_failures_throttle_the_source_not_the_officer_and_each_failure_is_audited(
    access: Access, make_token: TokenFactory
) -> None:
    officer = await access.person("officer")
    for _ in range(5):
        resp = await access.login(officer, password="wrong password!")
        assert resp.status_code == 401 and resp.json()["detail"] == "invalid credentials"
    resp = await access.login(officer)  # this source must wait, even with the right password
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) > 0

    # The officer, from the car (another address), is not locked out by whoever guessed.
    car = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=access.app, client=("10.20.30.40", 5555)), base_url="http://testserver"
    )
    async with car:
        assert (await Access(access.app, car).login(officer)).status_code == 200

    auditor = make_token(subject="auditor-1", roles=["auditor"], agency=AGENCY_ORI)
    entries = await access.audit(auditor, action="auth.login", actor=officer.id)
    assert [e["outcome"] for e in entries] == ["failed"] * 5 + ["ok"]  # the throttled try is counted, not logged
    assert [e["details"].get("attempt") for e in entries[:5]] == [1, 2, 3, 4, 5]
    assert all(e["source_ip"] for e in entries)


async def test_second_factor_is_required_checked_and_single_use(access: Access) -> None:
    supervisor = await access.person("supervisor", totp=True)
    resp = await access.login(supervisor, totp="")
    assert resp.status_code == 401 and resp.json()["detail"] == "invalid credentials"
    resp = await access.login(supervisor, totp="000000" if supervisor.totp_now() != "000000" else "111111")
    assert resp.status_code == 401
    code = supervisor.totp_now()
    assert (await access.login(supervisor, totp=code)).status_code == 200
    replay = await access.login(supervisor, totp=code)
    assert replay.status_code == 401 and replay.json()["detail"] == "invalid credentials"


async def test_second_factor_can_be_made_mandatory(access_settings: Settings) -> None:
    from services.access.main import create_app
    from tests.support.apps import running

    app = create_app(access_settings.model_copy(update={"require_second_factor": True}))
    async with running(app) as client:
        strict = Access(app, client)
        without = await strict.person("officer")
        resp = await strict.login(without)
        assert resp.status_code == 401 and resp.json()["detail"] == "invalid credentials"
        assert (await strict.login(await strict.person("officer", totp=True))).status_code == 200


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(access: Access) -> None:
    officer = await access.person("officer")
    first = (await access.login(officer)).json()
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await access.client.get("/v1/requests", headers=bearer(second["access_token"]))).status_code == 200

    # The spent token comes back (stolen copy): refused, and the whole family dies with it.
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert resp.status_code == 401 and "refresh token reused" in resp.json()["detail"]
    resp = await access.client.get("/v1/requests", headers=bearer(second["access_token"]))
    assert resp.status_code == 401 and "session ended" in resp.json()["detail"]


async def test_logout_revokes_the_refresh_token_and_the_session(access: Access) -> None:
    officer = await access.person("officer")
    pair = (await access.login(officer)).json()
    resp = await access.client.post("/v1/logout", headers=bearer(pair["access_token"]))
    assert resp.status_code == 200 and resp.json() == {"session_ended": True}
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert resp.status_code == 401 and "logged out" in resp.json()["detail"]
    assert (await access.client.get("/v1/grants", headers=bearer(pair["access_token"]))).status_code == 401


async def test_a_session_idle_for_30_minutes_ends(access: Access) -> None:
    officer = await access.person("officer")
    pair = (await access.login(officer)).json()
    other = (await access.login(officer)).json()
    async with access.app.state.engine.begin() as conn:  # 31 minutes pass without activity
        await conn.execute(
            text("UPDATE access.sessions SET last_seen_at = :t WHERE user_id = :u"),
            {"t": datetime.now(UTC) - timedelta(minutes=31), "u": officer.id},
        )
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert resp.status_code == 401 and "idle" in resp.json()["detail"]
    resp = await access.client.get("/v1/requests", headers=bearer(other["access_token"]))
    assert resp.status_code == 401 and "idle" in resp.json()["detail"]


async def test_client_credentials_for_agencies_and_services(access: Access, access_settings: Settings) -> None:
    client_id, secret = await access.agency_client("Robbinsdale PD", "MN0270900")
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert resp.status_code == 200 and "refresh_token" not in resp.json()
    principal = await TokenVerifier(access_settings).verify(resp.json()["access_token"])
    assert principal.roles == {"agency"} and principal.agency == "MN0270900"
    assert principal.claims["agency_name"] == "Robbinsdale PD" and principal.session_id is None

    resp = await access.client.post(
        "/v1/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret + "x"}
    )
    assert resp.status_code == 401
    resp = await access.client.post("/v1/token", data={"grant_type": "implicit"})
    assert resp.status_code == 400 and "unsupported grant_type" in resp.json()["detail"]
    resp = await access.client.post("/v1/token", data={"grant_type": "password", "username": "x"})
    assert resp.status_code == 400
    resp = await access.client.post(
        "/v1/token", data={"grant_type": "password", "username": "nobody", "password": PASSWORD}
    )
    assert resp.status_code == 401 and resp.json()["detail"] == "invalid credentials"


async def test_concurrent_uses_of_one_refresh_token_let_only_one_through(access: Access) -> None:
    import asyncio

    officer = await access.person("officer")
    pair = (await access.login(officer)).json()
    form = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    first, second = await asyncio.gather(
        access.client.post("/v1/token", data=form), access.client.post("/v1/token", data=form)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 401]


async def test_a_rotated_key_signs_new_tokens_without_restart(access_settings: Settings, tmp_path: Path) -> None:
    from services.access.main import create_app
    from shared.keys import generate_key
    from tests.support.apps import running

    app = create_app(access_settings.model_copy(update={"jwt_keys_dir": tmp_path}))
    async with running(app) as client:
        access = Access(app, client)
        officer = await access.person("officer")
        old_token = await access.token(officer)
        new_key = generate_key(tmp_path)  # `alpr keys rotate` while the service runs
        new_token = await access.token(officer)
        assert jwt.get_unverified_header(new_token)["kid"] == new_key.kid != jwt.get_unverified_header(old_token)["kid"]
        kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
        assert new_key.kid in kids and jwt.get_unverified_header(old_token)["kid"] in kids
        for token in (old_token, new_token):  # both verify: the old key stays until removed
            assert (await client.get("/v1/grants", headers=bearer(token))).status_code == 200

"""Ended sessions end everywhere: after logout, refresh-token reuse, disabling a person or a client, or rotating a
client's secret, the token stops working on access, ingest and hotlist within seconds (each running as its own
database role); a signing key removed from the folder stops being trusted at the next key refresh."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from alpr.roles import service_database_url
from services.hotlist.main import create_app as create_hotlist
from services.ingest.main import create_app as create_ingest
from shared.keys import generate_key, sign_token
from shared.settings import Settings
from tests.access.conftest import Access, bearer
from tests.conftest import TEST_ROLE_PASSWORDS, TokenFactory
from tests.support.apps import running

REFRESH_S = 0.5  # revocation_refresh_s in these apps: the promise is "within seconds"


def _as_role(settings: Settings, service: str) -> Settings:
    assert settings.database_url
    url = service_database_url(settings.database_url, service, TEST_ROLE_PASSWORDS[service])
    return settings.model_copy(update={"database_url": Settings(database_url=url).database_url})


@pytest.fixture
async def others(access_settings: Settings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    fast = access_settings.model_copy(update={"revocation_refresh_s": REFRESH_S})
    async with AsyncExitStack() as stack:
        ingest = await stack.enter_async_context(running(create_ingest(_as_role(fast, "ingest"), run_worker=False)))
        hotlist = await stack.enter_async_context(running(create_hotlist(_as_role(fast, "hotlist"))))
        yield {"ingest": ingest, "hotlist": hotlist}


async def _refused_everywhere(clients: dict[str, httpx.AsyncClient], token: str) -> float:
    """Seconds until every service answers 401 to `token` (fails past 5 s)."""
    start = time.monotonic()
    pending = dict(clients)
    while pending and time.monotonic() - start < 5:
        for name, client in list(pending.items()):
            if (await client.get("/v1/whoami", headers=bearer(token))).status_code == 401:
                pending.pop(name)
        await asyncio.sleep(0.1)
    assert not pending, f"still accepted by {sorted(pending)}"
    return time.monotonic() - start


async def _works_everywhere(clients: dict[str, httpx.AsyncClient], token: str) -> None:
    for name, client in clients.items():
        resp = await client.get("/v1/whoami", headers=bearer(token))
        assert resp.status_code == 200, (name, resp.text)


async def test_logout_and_refresh_reuse_end_the_session_on_every_service(
    access: Access, others: dict[str, httpx.AsyncClient]
) -> None:
    everywhere = {"access": access.client, **others}
    officer = await access.person("officer")
    token = await access.token(officer)
    await _works_everywhere(everywhere, token)
    assert (await access.client.post("/v1/logout", headers=bearer(token))).status_code == 200
    assert await _refused_everywhere(everywhere, token) < 3 * REFRESH_S + 1

    login = (await access.login(officer)).json()
    renewed = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    )
    assert renewed.status_code == 200
    fresh = renewed.json()["access_token"]
    await _works_everywhere(everywhere, fresh)
    reuse = await access.client.post(
        "/v1/token", data={"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}
    )
    assert reuse.status_code == 401  # someone replayed the spent token: the family and its access tokens die
    await _refused_everywhere(everywhere, fresh)
    await _refused_everywhere(everywhere, login["access_token"])


async def test_disabling_a_person_or_a_new_password_ends_their_tokens_everywhere_and_is_audited(
    access: Access, others: dict[str, httpx.AsyncClient], make_token: TokenFactory
) -> None:
    everywhere = {"access": access.client, **others}
    officer = await access.person("officer")
    admin = make_token(subject="admin-rev", roles=["admin"], agency=officer.agency)
    token = await access.token(officer)
    await _works_everywhere(everywhere, token)

    resp = await access.client.post(f"/v1/users/{officer.id}/disable", headers=bearer(admin))
    assert resp.status_code == 200 and resp.json()["disabled"] is True
    await _refused_everywhere(everywhere, token)
    assert (await access.login(officer)).status_code == 401

    resp = await access.client.post(f"/v1/users/{officer.id}/enable", headers=bearer(admin))
    assert resp.status_code == 200 and resp.json()["disabled"] is False
    token = await access.token(officer)
    await _works_everywhere(everywhere, token)

    # A new password ends what the old one opened.
    resp = await access.client.post(
        f"/v1/users/{officer.id}/password", json={"password": "a brand new passphrase"}, headers=bearer(admin)
    )
    assert resp.status_code == 200, resp.text
    await _refused_everywhere(everywhere, token)
    assert (await access.login(officer)).status_code == 401
    resp = await access.client.post(
        "/v1/token",
        data={"grant_type": "password", "username": officer.badge, "password": "a brand new passphrase"},
    )
    assert resp.status_code == 200
    await _works_everywhere(everywhere, resp.json()["access_token"])
    auditor = make_token(subject="auditor-rev", roles=["auditor"], agency=officer.agency)
    actions = [e["action"] for e in await access.audit(auditor, actor="admin-rev")]
    assert {"user.disable", "user.enable", "user.password"} <= set(actions)


async def test_disabling_or_rekeying_a_client_ends_its_tokens_everywhere(
    access: Access, others: dict[str, httpx.AsyncClient], make_token: TokenFactory
) -> None:
    # The client's own agency's administrator (another agency's is refused: tests/security/test_master_key.py).
    admin = make_token(subject="admin-rev-c", roles=["admin"], agency="MN0270900")
    client_id, secret = await access.agency_client(ori="MN0270900")
    token = await access.client_token(client_id, secret)
    await _works_everywhere(others, token)

    resp = await access.client.post(f"/v1/clients/{client_id}/rotate-secret", headers=bearer(admin))
    assert resp.status_code == 200
    new_secret = resp.json()["client_secret"]
    assert new_secret and new_secret != secret
    await _refused_everywhere(others, token)
    refused = await access.client.post(
        "/v1/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert refused.status_code == 401
    token = await access.client_token(client_id, new_secret)  # the new secret's token works at once
    await _works_everywhere(others, token)

    assert (await access.client.post(f"/v1/clients/{client_id}/disable", headers=bearer(admin))).status_code == 200
    await _refused_everywhere(others, token)
    assert (await access.client.post(f"/v1/clients/{client_id}/enable", headers=bearer(admin))).status_code == 200
    await _works_everywhere(others, await access.client_token(client_id, new_secret))
    auditor = make_token(subject="auditor-rev-c", roles=["auditor"], agency="MN0270900")
    actions = {e["action"] for e in await access.audit(auditor, actor="admin-rev-c")}
    assert {"client.rotate_secret", "client.disable", "client.enable"} <= actions


async def test_a_removed_signing_key_stops_being_trusted_at_the_next_key_refresh(
    settings: Settings, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "keys"
    old = generate_key(keys_dir, "ES256")
    generate_key(keys_dir, "ES256")  # a rotation: the newer key signs from now on
    own = settings.model_copy(update={"jwt_keys_dir": keys_dir, "jwks_cache_s": 1})
    token = sign_token(old, subject="admin-old", audience="alpr", issuer="alpr-access", ttl_s=30 * 86400,
                       claims={"roles": ["admin"]})  # fmt: skip
    async with running(create_hotlist(_as_role(own, "hotlist"))) as hotlist:
        assert (await hotlist.get("/v1/whoami", headers=bearer(token))).status_code == 200
        next(keys_dir.glob(f"*{old.kid}*.pem")).unlink()  # the operator retires the old key
        await asyncio.sleep(1.2)
        resp = await hotlist.get("/v1/whoami", headers=bearer(token))
        assert resp.status_code == 401 and "unknown signing key" in resp.json()["detail"]

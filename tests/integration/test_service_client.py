"""`alpr access ensure-service-client` (docker compose's `service-client` job): the internal client from
ALPR_SERVICE_CLIENT_ID/SECRET is created once, reused on the next run, refused with another secret, and its token
carries the `service` role the internal endpoints require and, made with `--service`, the calling service's name."""

import base64
import json
import uuid

import pytest

from services.access.main import create_app
from shared.settings import Settings, get_settings
from tests.access.conftest import CHEAP_ARGON2
from tests.access.test_cli import alpr, cli_env  # noqa: F401 - the fixture, used by name
from tests.support.apps import running


async def ensure(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    get_settings.cache_clear()  # the environment changed between runs
    return await alpr(["access", "ensure-service-client", "--service", "hotlist"], capsys, monkeypatch)


@pytest.mark.usefixtures("cli_env")
async def test_ensure_service_client_creates_once_and_the_token_works(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, secret = f"service-{uuid.uuid4().hex[:8]}", "a-deployment-secret-of-enough-length"
    monkeypatch.delenv("ALPR_SERVICE_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("ALPR_SERVICE_CLIENT_ID", client_id)
    code, _ = await ensure(capsys, monkeypatch)
    assert code == 1  # no secret configured: nothing made

    monkeypatch.setenv("ALPR_SERVICE_CLIENT_SECRET", secret)
    assert await ensure(capsys, monkeypatch) == (
        0,
        f"service client {client_id}: created\n",
    )
    assert await ensure(capsys, monkeypatch) == (
        0,
        f"service client {client_id}: exists\n",
    )
    monkeypatch.setenv("ALPR_SERVICE_CLIENT_SECRET", "another-secret-of-enough-length")
    code, _ = await ensure(capsys, monkeypatch)
    assert code == 1  # refused: the existing client is not changed

    async with running(create_app(settings.model_copy(update=CHEAP_ARGON2))) as access:
        resp = await access.post(
            "/v1/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        )
        assert resp.status_code == 200, resp.text
        whoami = await access.get("/v1/whoami", headers={"Authorization": f"Bearer {resp.json()['access_token']}"})
        assert whoami.status_code == 200 and "service" in whoami.json()["roles"]
        payload = resp.json()["access_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["service"] == "hotlist"  # what the routes that name their callers read

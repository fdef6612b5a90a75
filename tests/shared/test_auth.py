from pathlib import Path

import pytest
from jose import jwt

from services.ingest.main import create_app
from shared.keys import SigningKey, generate_key, sign_token
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.support.apps import running


async def test_valid_token_is_accepted(settings: Settings, make_token: TokenFactory) -> None:
    async with running(create_app(settings)) as client:
        token = make_token(subject="u-7", roles=["officer"], agency="MN0271200", badge="4411")
        resp = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.json()["subject"] == "u-7"
    assert resp.json()["roles"] == ["officer"]
    assert resp.json()["badge"] == "4411"


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "expired",
        "foreign_key",
        "other_audience",
        "other_issuer",
        "malformed",
        "hmac_with_public_key",
        "no_kid",
    ],
)
async def test_bad_tokens_are_refused_with_401(
    case: str, settings: Settings, make_token: TokenFactory, foreign_key: SigningKey, signing_key: SigningKey
) -> None:
    headers: dict[str, str] = {}
    if case == "expired":
        headers["Authorization"] = f"Bearer {make_token(ttl_s=-3600)}"
    elif case == "foreign_key":
        headers["Authorization"] = f"Bearer {make_token(key=foreign_key)}"
    elif case == "other_audience":
        headers["Authorization"] = f"Bearer {make_token(audience='someone-else')}"
    elif case == "other_issuer":
        headers["Authorization"] = f"Bearer {make_token(issuer='evil')}"
    elif case == "malformed":
        headers["Authorization"] = "Bearer not.a.token"
    elif case == "hmac_with_public_key":
        # The classic confusion attack: HS256 "signed" with the public key.
        forged = jwt.encode(
            {"sub": "x", "aud": "alpr", "iss": "alpr-access", "exp": 9999999999, "roles": ["admin"]},
            str(signing_key.public_jwk),
            algorithm="HS256",
            headers={"kid": signing_key.kid},
        )
        headers["Authorization"] = f"Bearer {forged}"
    elif case == "no_kid":
        token = jwt.encode(
            {"sub": "x", "aud": "alpr", "iss": "alpr-access", "exp": 9999999999},
            signing_key.private_pem,
            algorithm="ES256",
        )
        headers["Authorization"] = f"Bearer {token}"
    async with running(create_app(settings)) as client:
        resp = await client.get("/v1/whoami", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert isinstance(resp.json()["detail"], str)
    assert "Traceback" not in resp.text


async def test_key_rotation_needs_no_restart(settings: Settings, tmp_path: Path) -> None:
    rotated = settings.model_copy(update={"jwt_keys_dir": tmp_path})
    first = generate_key(tmp_path)
    async with running(create_app(rotated)) as client:
        old = sign_token(first, subject="a", audience="alpr", issuer="alpr-access", ttl_s=60)
        assert (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {old}"})).status_code == 200
        second = generate_key(tmp_path)  # rotation while the service runs
        new = sign_token(second, subject="b", audience="alpr", issuer="alpr-access", ttl_s=60)
        assert (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {new}"})).status_code == 200
        assert (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {old}"})).status_code == 200

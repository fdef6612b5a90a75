import httpx

from services.access.main import create_app
from shared.auth import RemoteJWKS, TokenVerifier
from shared.keys import SigningKey
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.support.apps import running


async def test_jwks_serves_the_public_keys_that_verify_tokens(
    settings: Settings, signing_key: SigningKey, make_token: TokenFactory
) -> None:
    app = create_app(settings)
    async with running(app) as client:
        resp = await client.get("/.well-known/jwks.json")
        assert resp.status_code == 200
        keys = resp.json()["keys"]
        assert signing_key.kid in {k["kid"] for k in keys}
        assert all("d" not in k for k in keys), "a private part leaked"

        # A service deployed apart verifies tokens through that endpoint.
        source = RemoteJWKS("http://testserver/.well-known/jwks.json", transport=httpx.ASGITransport(app=app))
        principal = await TokenVerifier(settings, source).verify(make_token(subject="u-9", roles=["auditor"]))
        assert principal.subject == "u-9" and principal.roles == {"auditor"}

"""`require_trained`: officers and supervisors need current ALPR training (start a shift, read data); clients pass."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.auth import Principal, TokenVerifier, require_trained
from shared.errors import register_error_handlers
from shared.settings import Settings
from tests.conftest import TokenFactory


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    register_error_handlers(app)

    @app.post("/shift")
    async def start_shift(principal: Principal = Depends(require_trained("officer", "agency"))) -> dict[str, str]:
        return {"subject": principal.subject}

    return app


@pytest.mark.parametrize(
    ("roles", "trained_days", "status"),
    [
        (["officer"], 30, 200),
        (["officer"], -1, 403),  # training lapsed yesterday
        (["officer"], None, 403),  # never trained
        (["agency"], None, 200),  # clients are not operators
        (["auditor"], 30, 403),  # the role check still applies
    ],
)
async def test_training_must_be_current(
    settings: Settings, make_token: TokenFactory, roles: list[str], trained_days: int | None, status: int
) -> None:
    claims: dict[str, int | None] = {"trained_until": None}  # None: no training on record
    if trained_days is not None:
        claims["trained_until"] = int((datetime.now(UTC) + timedelta(days=trained_days)).timestamp())
    token = make_token(roles=roles, **claims)
    transport = httpx.ASGITransport(app=_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.post("/shift", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == status, resp.text
    if status == 403 and roles == ["officer"]:
        assert "training is not current" in resp.json()["detail"]

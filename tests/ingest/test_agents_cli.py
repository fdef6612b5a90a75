"""`alpr agents ...`: an agent registered on the command line posts with its token; rotate and disable take hold."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from alpr.cli import main
from services.ingest.main import create_app
from shared.settings import Settings, get_settings
from tests.ingest.agents_support import now_ms, post, results_body
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    assert settings.database_url
    monkeypatch.setenv("ALPR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ALPR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def _alpr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(main, argv)
    return code, capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
async def test_cli_registers_rotates_and_disables_agents(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = f"pole-{uuid.uuid4().hex[:6]}"
    code, out = await _alpr(
        ["agents", "add", "--name", name, "--agency", "MN0270100", "--kind", "fixed", "--lat", "45.0", "--lon",
         "-93.3", "--placed-on", "2026-02-01"],
        capsys,
    )  # fmt: skip
    assert code == 0, out
    first = json.loads(out)
    assert first["token"].startswith("alpra_") and first["upload_path"].endswith(first["token"])
    code, out = await _alpr(["agents", "add", "--name", "x", "--agency", "MN0270100", "--kind", "fixed"], capsys)
    assert code == 2 and "placed_on" in out  # a fixed reader needs its place and date

    app = create_app(ingest_settings(settings, data_dir=tmp_path), run_worker=False)
    async with running(app) as client:
        assert (await post(client, first["token"], results_body("CLI123", now_ms()))).status_code == 200
        code, out = await _alpr(["agents", "rotate", name], capsys)
        assert code == 0
        second = json.loads(out)["token"]
        await app.state.agents.registry.invalidate()  # another process changed the registry: as after a refresh
        assert (await post(client, first["token"], results_body("CLI124", now_ms()))).status_code == 401
        assert (await post(client, second, results_body("CLI125", now_ms()))).status_code == 200
        assert (await _alpr(["agents", "disable", name], capsys))[0] == 0
        await app.state.agents.registry.invalidate()
        assert (await post(client, second, results_body("CLI126", now_ms()))).status_code == 403
    code, out = await _alpr(["agents", "list", "--agency", "MN0270100"], capsys)
    assert code == 0 and any(a["name"] == name and a["disabled_at"] for a in json.loads(out))

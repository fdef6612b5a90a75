"""The settings `alpr up` saves for the CLI: written owner-only, read back to the same values, the CLI's own
environment winning over them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from alpr.settings_file import SETTINGS_FILE, cli_settings, write
from shared.settings import Settings


def test_saved_settings_come_back_as_they_were_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ALPR_HOTLIST_SOURCE_URL", "ALPR_HOTLIST_SOURCE_CREDENTIAL", "ALPR_RECOGNITION_DETECT_SIDES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    credential = "Basic it's a \\ secret"
    runner = Settings(
        data_dir=tmp_path / "var",
        hotlist_source_url="http://127.0.0.1:8090/hotlist.csv",
        hotlist_source_credential=SecretStr(credential),
        recognition_detect_sides=(960, 1600),
        log_json=False,
        hotlist_port=18004,
    )
    runner.data_dir.mkdir()
    path = write(runner)
    assert path == runner.data_dir / SETTINGS_FILE and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "database_url" not in path.read_text().lower()

    monkeypatch.setenv("ALPR_DATA_DIR", str(runner.data_dir))
    monkeypatch.setenv("ALPR_HOTLIST_PORT", "19004")  # the CLI's own environment
    cli = cli_settings(Settings())
    assert cli.hotlist_source_url == runner.hotlist_source_url
    assert cli.hotlist_source_credential is not None and cli.hotlist_source_credential.get_secret_value() == credential
    assert (cli.recognition_detect_sides, cli.log_json) == ((960, 1600), False)
    assert cli.hotlist_port == 19004
    assert cli.database_url is None  # the embedded server is found in the data folder, not saved

    other = tmp_path / "elsewhere"
    monkeypatch.setenv("ALPR_DATA_DIR", str(other))  # another data folder: nothing saved there
    assert cli_settings(Settings()).hotlist_source_url is None

"""The settings `alpr up` saves for the CLI: written owner-only, read back to the same values, the CLI's own
environment winning over them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
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


def test_alpr_up_reads_the_saved_settings_and_its_flags_override_them_and_are_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alpr.cli import build_parser
    from alpr.settings_file import up_settings

    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("ACCESS_PORT", "HOTLIST_PORT", "INGEST_PORT", "LOG_JSON", "HOTLIST_SOURCE_URL"):
        monkeypatch.delenv(f"ALPR_{name}", raising=False)  # restored afterwards: up_settings exports what it runs with
    data = tmp_path / "var"
    data.mkdir()
    monkeypatch.setenv("ALPR_DATA_DIR", str(data))
    write(Settings(data_dir=data, hotlist_port=18004, ingest_port=18002, log_json=False))  # an earlier `alpr up`

    first = up_settings(build_parser().parse_args(["up", "--access-port", "18001", "--ingest-port", "18012"]))
    assert (first.access_port, first.ingest_port, first.hotlist_port, first.log_json) == (18001, 18012, 18004, False)
    # The services inherit the environment: the saved settings reach them too, not only the runner.
    assert os.environ["ALPR_HOTLIST_PORT"] == "18004" and os.environ["ALPR_ACCESS_PORT"] == "18001"
    write(first)  # as the runner does once the database is up

    for name in ("ACCESS_PORT", "HOTLIST_PORT", "INGEST_PORT", "LOG_JSON"):
        monkeypatch.delenv(f"ALPR_{name}")  # a second `make run`, in a fresh shell, with no flag
    again = up_settings(build_parser().parse_args(["up"]))
    assert (again.access_port, again.ingest_port, again.hotlist_port, again.log_json) == (18001, 18012, 18004, False)


def test_alpr_up_help_lists_every_setting_as_a_flag_with_its_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "alpr.cli", "up", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flat = " ".join(out.split())
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')} VALUE ALPR_{name.upper()} (default:" in flat, name


def test_tests_never_read_the_checkouts_data_folder() -> None:
    """`make run` keeps its data in ./var; `make test` in the same checkout must not pick it up (its keys, its
    saved settings): the test set-up points ALPR_DATA_DIR at a folder of its own."""
    checkout = Path(__file__).resolve().parents[1]
    assert not Settings().data_dir.resolve().is_relative_to(checkout)
    assert not cli_settings(Settings()).data_dir.resolve().is_relative_to(checkout)

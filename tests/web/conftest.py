"""The browser the web tests drive: Debian's Chromium and its chromedriver (installed with apt-get when missing,
never a browser download), and axe-core from the npm registry (installed once into a cache folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from alpr.roles import prepare_database
from shared.settings import Settings
from tests.conftest import TEST_ROLE_PASSWORDS, make_settings
from tests.support.pg import create_test_database, drop_database
from tests.support.s3 import WeedS3

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, pg_maintenance_url: str, keys_dir: Path, s3_server: WeedS3
) -> Iterator[Settings]:
    """A database of the pages' own: their figures are whole days of daily facts, and a purge another test ran
    earlier in the session's database has already fixed the facts of the days these pages' reads are written to."""
    url = create_test_database(pg_maintenance_url)
    prepare_database(url, TEST_ROLE_PASSWORDS)
    yield make_settings(tmp_path_factory.mktemp("web-data"), url, keys_dir, s3_server)
    drop_database(pg_maintenance_url, url)


AXE_VERSION = "4.14.1"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _ensure_chromium() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    if os.geteuid() != 0:
        pytest.fail("the web tests need Debian's chromium and chromium-driver (apt-get install, as root)")
    _apt_install("chromium", "chromium-driver")


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, to run inside the page (the accessibility rules of WCAG 2 A and AA)."""
    folder = Path.home() / ".cache" / "alpr-tests" / f"axe-core-{AXE_VERSION}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        if shutil.which("npm") is None and os.geteuid() == 0:
            _apt_install("npm")
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("the accessibility check needs npm (Debian: apt-get install npm) to fetch axe-core")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
        )
    return script.read_text()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and the accessibility results, kept after the run (the path is printed)."""
    root = Path(os.environ.get("ALPR_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "alpr-test-artifacts")
    folder = root / f"web-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    _made.append(folder)
    return folder


_made: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the screenshots are, printed at the end of every run that made them (captured output or not)."""
    for folder in _made:
        terminalreporter.write_line(f"web test artifacts (screenshots, axe results): {folder}")


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    _ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="alpr-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

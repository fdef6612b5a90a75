"""Starting and stopping `alpr up` in a subprocess, as an operator does (tests/test_newcomer.py and others)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

SERVICES = ("access", "ingest", "recognition", "hotlist")


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any ALPR_* setting or the tests' database: what a newcomer's shell has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPR_") and k != "TEST_DATABASE_URL"}
    env["ALPR_DATA_DIR"] = str(data_dir)
    env.update(settings)
    return env


def port_settings(ports: dict[str, int]) -> dict[str, str]:
    return {f"ALPR_{name.upper()}_PORT": str(port) for name, port in ports.items()}


def start(
    data_dir: Path,
    ports: dict[str, int],
    *,
    env: dict[str, str] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    env = env or clean_env(data_dir, ALPR_LOG_LEVEL="WARNING", **port_settings(ports))
    return subprocess.Popen(
        [sys.executable, "-m", "alpr.cli", "up"], env=env, start_new_session=True, stdout=stdout, stderr=stderr
    )


def all_ready(ports: dict[str, int], timeout_s: float = 120) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    codes: dict[str, int] = {}
    while time.monotonic() < deadline:
        for name, port in ports.items():
            try:
                codes[name] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                codes[name] = 0
        if all(code == 200 for code in codes.values()):
            break
        time.sleep(0.5)
    return codes


def stop(proc: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as an operator stops `make run`."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise

"""`alpr up` on the embedded defaults: all four services answer /readyz 200; Ctrl-C stops; a restart reuses data."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.s3 import free_port_pairs

SERVICES = ("access", "ingest", "recognition", "hotlist")


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPR_")}
    env["ALPR_DATA_DIR"] = str(data_dir)
    env["ALPR_LOG_LEVEL"] = "WARNING"
    for name, port in ports.items():
        env[f"ALPR_{name.upper()}_PORT"] = str(port)
    return subprocess.Popen([sys.executable, "-m", "alpr.cli", "up"], env=env, start_new_session=True)


def _all_ready(ports: dict[str, int], timeout_s: float = 120) -> dict[str, int]:
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


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def test_up_starts_everything_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
    data_dir = tmp_path / "var"
    proc = _start(data_dir, ports)
    try:
        assert _all_ready(ports) == dict.fromkeys(SERVICES, 200)
        # The internal service client the runner made works at the token endpoint.
        saved = json.loads((data_dir / "service-client.json").read_text())
        resp = httpx.post(
            f"http://127.0.0.1:{ports['access']}/v1/token",
            data={"grant_type": "client_credentials", **saved},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
    finally:
        assert _stop(proc) == 0
    assert stat.S_IMODE((data_dir / "service-client.json").stat().st_mode) == 0o600
    assert (data_dir / "pg" / "PG_VERSION").is_file()
    keys = sorted((data_dir / "keys").glob("*.pem"))
    assert len(keys) == 1
    for port in ports.values():  # nothing left listening
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError(f"port {port} still answers")
        except httpx.ConnectError:
            pass

    proc = _start(data_dir, ports)  # a second start reuses the data and the key
    try:
        assert _all_ready(ports) == dict.fromkeys(SERVICES, 200)
    finally:
        assert _stop(proc) == 0
    assert sorted((data_dir / "keys").glob("*.pem")) == keys
    assert json.loads((data_dir / "service-client.json").read_text()) == saved  # reused, not replaced

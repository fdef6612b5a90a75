"""A newcomer's first hour, as the README tells it, on the embedded default: no ALPR_DATABASE_URL, no
TEST_DATABASE_URL, a clean data folder. `alpr up` starts everything; the `alpr` command (what `make alpr` runs),
given nothing but the data folder, creates the first administrator, an officer with training and an agency client
while the system runs; they log in; the officer posts a read; a hot list comes from a local HTTP server by
`alpr hotlist sync`, and the next read hits (in the answer and on the car's open stream); `alpr audit verify`; Ctrl-C
with the stream open stops everything at once and cleanly; a second start keeps everything."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.hotlist.bca import CREDENTIAL, FakeBca, extract, row
from tests.support.runner import SERVICES, all_ready, clean_env, port_settings, start, stop
from tests.support.s3 import free_port_pairs

PASSWORD = "a long enough passphrase"
AGENCY = "MN0271200"
ALPR = str(Path(sys.executable).with_name("alpr"))  # the console script `make alpr` runs


def _alpr(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    # Only the data folder: everything else comes from the settings `alpr up` saved there.
    done = subprocess.run(
        [ALPR, *args],
        env=clean_env(data_dir, ALPR_LOG_LEVEL="WARNING"),
        cwd=data_dir.parent,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _follow(url: str, token: str, lines: list[str], opened: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=None) as resp:
            opened.set()
            for line in resp.iter_lines():
                lines.append(line)
    except httpx.HTTPError:
        pass
    finally:
        opened.set()


def _until(check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.2)
    return got


def test_a_newcomers_first_hour_on_the_embedded_default(tmp_path: Path) -> None:
    ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
    data_dir = tmp_path / "var"
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    bca = FakeBca()
    bca.start()
    bca.publish(extract([row("V000000471", "NEW4711"), row("W000000472", "OLD4712")]))
    env = clean_env(
        data_dir,
        ALPR_LOG_LEVEL="WARNING",
        ALPR_HOTLIST_SOURCE_URL=bca.url,
        ALPR_HOTLIST_SOURCE_CREDENTIAL=CREDENTIAL,
        ALPR_HOTLIST_SYNC_SCHEDULED="false",
        **port_settings(ports),
    )
    out, err = (tmp_path / "up.out").open("wb"), (tmp_path / "up.err").open("wb")
    proc = start(data_dir, ports, env=env, stdout=out, stderr=err)
    try:
        assert all_ready(ports, timeout_s=180) == dict.fromkeys(SERVICES, 200)
        printed = _until(lambda: (tmp_path / "up.out").read_text())
        assert "access create-admin" in printed and "README.md" in printed

        # People and a client, made with the CLI while the system runs.
        admin = ["--username", "admin", "--name", "First Admin", "--agency", AGENCY, "--password-stdin"]
        assert "user admin (admin)" in _alpr(data_dir, "access", "create-admin", *admin, stdin=PASSWORD + "\n")
        person = ["--username", "jdoe", "--name", "J. Doe", "--agency", AGENCY, "--badge", "4711"]
        _alpr(data_dir, "access", "add-user", *person, "--role", "officer", "--password-stdin", stdin=PASSWORD + "\n")
        today = date.today()
        _alpr(data_dir, "access", "add-training", "--user", "4711", "--course", "ALPR operation and data policy",
              "--completed", str(today), "--expires", str(today + timedelta(days=365)))  # fmt: skip
        client = _alpr(data_dir, "access", "add-client", "--name", "Hennepin County SO", "--role", "agency",
                       "--agency-name", "Hennepin County Sheriff", "--ori", "MN0270000")  # fmt: skip
        secrets = dict(line.split(" ", 1) for line in client.splitlines()[:2])

        def token(**form: str) -> str:
            resp = httpx.post(f"{url['access']}/v1/token", data=form, timeout=30)
            assert resp.status_code == 200, resp.text
            return str(resp.json()["access_token"])

        token(grant_type="password", username="admin", password=PASSWORD)
        token(grant_type="client_credentials", **secrets)
        officer = token(grant_type="password", username="4711", password=PASSWORD)
        auth = {"Authorization": f"Bearer {officer}"}
        shift = httpx.post(f"{url['ingest']}/v1/shifts", json={"badge": "4711", "unit": "car-1"}, headers=auth)
        assert shift.status_code == 201, shift.text

        def read(plate: str) -> dict:  # type: ignore[type-arg]
            now = datetime.now(UTC).isoformat()
            meta = {"client_read_id": str(uuid.uuid4()), "unit": "car-1", "camera": "front", "plate": plate,
                    "state": "MN", "captured_at": now, "lat": 45.03, "lon": -93.36}  # fmt: skip
            resp = httpx.post(f"{url['ingest']}/v1/reads", json=meta, headers=auth, timeout=30)
            assert resp.status_code == 200, resp.text
            return dict(resp.json())

        assert read("NEW4711")["hits"] == []  # no hot list yet

        # The car's stream is open from here to the end.
        lines: list[str] = []
        opened = threading.Event()
        stream = threading.Thread(
            target=_follow, args=(f"{url['ingest']}/v1/units/car-1/stream", officer, lines, opened), daemon=True
        )
        stream.start()
        assert opened.wait(30)

        synced = json.loads(_alpr(data_dir, "hotlist", "sync"))
        assert (synced["outcome"], synced["version"], synced["entries"]) == ("loaded", 1, 2)  # the first is 1

        def list_in_force() -> bool:
            resp = httpx.get(f"{url['hotlist']}/v1/hotlist/version", headers=auth, timeout=10)
            return resp.json().get("version") == 1

        _until(list_in_force)
        (hit,) = read("NEW4711")["hits"]
        assert hit["category"] == "stolen_vehicle"
        _until(lambda: any(hit["hit_id"] in line for line in lines), timeout_s=10)  # on the car's stream too

        assert "audit chain intact" in _alpr(data_dir, "audit", "verify")
        for name in SERVICES:
            metrics = httpx.get(f"{url[name]}/metrics", timeout=10)
            assert metrics.status_code == 200 and list(text_string_to_metric_families(metrics.text))
            assert "NEW4711" not in metrics.text

        # Ctrl-C with the car's stream open: everything stops at once, without a traceback.
        started = time.monotonic()
        assert stop(proc) == 0
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            stop(proc)
        bca.stop()
    errors = (tmp_path / "up.err").read_text()
    assert "Traceback" not in errors and "CancelledError" not in errors, errors[-3000:]
    assert took < 8, f"stopping took {took:.1f} s"  # uvicorn's graceful timeout is 10 s: no stream held it
    stream.join(10)
    assert not stream.is_alive(), "the stream was not closed by the shutdown"
    for private in ("service-ingest.json", "service-hotlist.json", "alpr.env"):
        assert stat.S_IMODE((data_dir / private).stat().st_mode) == 0o600
    assert (data_dir / "pg" / "PG_VERSION").is_file()
    keys = sorted((data_dir / "keys").glob("*.pem"))
    assert len(keys) == 1
    saved = json.loads((data_dir / "service-hotlist.json").read_text())
    for port in ports.values():  # nothing left listening
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError(f"port {port} still answers")
        except httpx.ConnectError:
            pass

    # A second start keeps the people, the list, the key and the service client.
    proc = start(data_dir, ports, env=env, stdout=out, stderr=err)
    try:
        assert all_ready(ports, timeout_s=180) == dict.fromkeys(SERVICES, 200)
        officer = token(grant_type="password", username="4711", password=PASSWORD)
        version = httpx.get(f"{url['hotlist']}/v1/hotlist/version", headers={"Authorization": f"Bearer {officer}"})
        assert version.json()["version"] == 1
    finally:
        assert stop(proc) == 0
    assert sorted((data_dir / "keys").glob("*.pem")) == keys
    assert json.loads((data_dir / "service-hotlist.json").read_text()) == saved

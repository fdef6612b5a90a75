"""The running system (`alpr up`), wired: an officer made with the `alpr access` CLI logs in at access, opens a
shift and posts a photo at ingest's port; ingest, with the service client the runner made, obtains its own token
from access and has recognition read the plate and hotlist match it (answer 200, nothing pending). A camera agent
registered with `alpr agents add` posts at ingest's port, and the agents' importer, a process of its own, stores
and matches the read."""

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil

from alpr.roles import role_names
from tests.ingest.agents_support import now_ms, results_body
from tests.recognition.render import jpeg, plate_image
from tests.support.pg import _connect_kwargs
from tests.support.runner import SERVICES, all_ready, stop
from tests.support.s3 import free_port_pairs

PASSWORD = "a long enough passphrase"


def _alpr(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alpr.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _connected_users(database_url: str) -> set[str]:
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {r["usename"] for r in rows}
    finally:
        await conn.close()


async def _agent_read(database_url: str, plate: str, timeout_s: float = 30) -> tuple[bool, bool] | None:
    """The agent's read once imported: (match pending, recognition pending)."""
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            row = await conn.fetchrow(
                "SELECT r.match_pending, r.recognition_pending FROM ingest.reads r "
                "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE r.plate = $1 AND NOT a.finish_pending",
                plate,
            )
            if row is not None:
                return row["match_pending"], row["recognition_pending"]
            await asyncio.sleep(0.2)
        return None
    finally:
        await conn.close()


def test_a_read_through_the_running_services(tmp_path: Path, database_url: str) -> None:
    ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPR_")}
    env.update(ALPR_DATA_DIR=str(tmp_path / "var"), ALPR_DATABASE_URL=database_url, ALPR_LOG_LEVEL="WARNING")
    # The test proves the wiring, not the latency: on a loaded machine the first OCR call can pass the car's 3 s.
    env.update(ALPR_INGEST_RECOGNITION_TIMEOUT_S="60", ALPR_INGEST_HOTLIST_TIMEOUT_S="30")
    env.update({f"ALPR_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    proc = subprocess.Popen([sys.executable, "-m", "alpr.cli", "up"], env=env, start_new_session=True)
    try:
        # The officer is made while the services run, as an administrator would.
        badge = str(uuid.uuid4().int % 10**6)
        person = ["--username", f"run-{badge}", "--name", "R. Unner", "--agency", "MN0271200", "--badge", badge]
        _alpr(env, "access", "add-user", *person, "--role", "officer", "--password-stdin", stdin=f"{PASSWORD}\n")
        today = date.today()
        _alpr(env, "access", "add-training", "--user", badge, "--course", "ALPR operation and data policy",
              "--completed", str(today - timedelta(days=1)), "--expires", str(today + timedelta(days=364)))  # fmt: skip
        assert all_ready(ports, timeout_s=60) == dict.fromkeys(SERVICES, 200)
        access, ingest = (f"http://127.0.0.1:{ports[s]}" for s in ("access", "ingest"))
        login = httpx.post(
            f"{access}/v1/token",
            data={"grant_type": "password", "username": badge, "password": PASSWORD},
            timeout=30,
        )
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        shift = httpx.post(
            f"{ingest}/v1/shifts", json={"badge": badge, "unit": "car-run", "cameras": ["front"]}, headers=auth
        )
        assert shift.status_code == 201, shift.text
        meta = {
            "client_read_id": "run-1",
            "unit": "car-run",
            "camera": "front",
            "captured_at": datetime.now(UTC).isoformat(),
            "lat": 45.03,
            "lon": -93.36,
        }
        files = {"metadata": (None, json.dumps(meta)), "photo": ("p.jpg", jpeg(plate_image("KXR482")))}
        read = httpx.post(f"{ingest}/v1/reads", files=files, headers=auth, timeout=30)
        assert read.status_code == 200, read.text  # 202 would mean a call to recognition or hotlist failed
        body = read.json()
        assert (body["plate"], body["plate_source"], body["pending"]) == ("KXR482", "recognition", [])
        # A camera agent: accepted by ingest's worker, imported and matched by the importer's own process.
        pole = ["--name", f"pole-{badge}", "--agency", "MN0271200", "--kind", "fixed", "--lat", "45", "--lon", "-93"]
        agent = json.loads(_alpr(env, "agents", "add", *pole, "--placed-on", str(today)))
        posted = httpx.post(
            f"{ingest}/v1/agents/openalpr/{agent['token']}",
            content=results_body("AGT482", now_ms()),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert posted.status_code == 200, posted.text
        importer = [p for p in psutil.Process(proc.pid).children() if "services.ingest.agents" in p.cmdline()]
        assert len(importer) == 1, [p.cmdline() for p in psutil.Process(proc.pid).children()]
        stored = asyncio.run(_agent_read(database_url, "AGT482"))
        assert stored == (False, False), stored  # stored, neither match nor second reading pending
        # Each service did that as its own least-privilege database role (the runner gives it no other URL).
        roles = role_names(_connect_kwargs(database_url)["database"])
        connected = asyncio.run(_connected_users(database_url))
        assert {roles["access"], roles["ingest"], roles["hotlist"]} <= connected, connected
    finally:
        assert stop(proc) == 0

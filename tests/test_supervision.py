"""`alpr up` supervises: kill -9 of each service (and of the agents' importer) leaves the others answering throughout,
and the killed one is back within 30 s, counted in `alpr_service_restarts`; ingest runs two processes, so killing
one of its workers does not stop it answering."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.support.runner import SERVICES, all_ready, clean_env, port_settings, start, stop
from tests.support.s3 import free_port_pairs

BACK_WITHIN_S = 30.0


def _children(runner: psutil.Process, module: str) -> list[psutil.Process]:
    return [p for p in runner.children(recursive=True) if any(module in part for part in p.cmdline())]


def _parent(runner: psutil.Process, module: str) -> psutil.Process:
    """The process the runner started for `module` (a uvicorn parent for ingest, whose workers are its children)."""
    found = [p for p in runner.children() if any(module in part for part in p.cmdline())]
    assert len(found) == 1, [p.cmdline() for p in runner.children()]
    return found[0]


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


def test_kill_9_of_each_service_restarts_it_and_stops_no_other(tmp_path: Path, database_url: str) -> None:
    ports = dict(zip(SERVICES, free_port_pairs(4), strict=True))
    env = clean_env(tmp_path / "var", ALPR_DATABASE_URL=database_url, ALPR_LOG_LEVEL="WARNING", **port_settings(ports))
    proc = start(tmp_path / "var", ports, env=env)
    try:
        assert all_ready(ports) == dict.fromkeys(SERVICES, 200)
        runner = psutil.Process(proc.pid)
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
            _kill_and_watch(ports, old, lambda s=service: _ready(ports[s]) == 200, service)  # type: ignore[misc]
            assert _parent(runner, f"services.{service}.main").pid != old.pid
            # A killed uvicorn parent's workers went with it (they would hold the port).
            assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
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
    finally:
        assert stop(proc) == 0

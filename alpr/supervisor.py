"""`alpr up`'s supervisor: keeps each child process (a service's uvicorn, the agents' importer) running.

A child that exits is restarted after a back-off (0.5 s, doubling to 30 s; back to 0.5 s once it has run a minute),
logged, and counted in `<data>/run/restarts.json`, which each service reads at scrape time into
`alpr_service_restarts{service}` (shared/supervision.py): the runner has no port of its own, and Prometheus already
scrapes the services. Only `stop()` (Ctrl-C, SIGTERM) ends them.

Each child runs in a process group of its own: when a uvicorn parent is killed (-9), its workers, orphaned, would
keep the port; the whole group is killed before the new one starts. A Ctrl-C at the terminal reaches the runner
only, which stops every group itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from shared.supervision import RESTARTS_FILE

log = structlog.get_logger("alpr.supervisor")

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a child that ran this long restarts after the shortest back-off again

Spawn = Callable[[], "subprocess.Popen[bytes]"]


@dataclass
class Child:
    name: str
    spawn: Spawn
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = BACKOFF_MIN_S
    restart_at: float | None = None  # set while it is down, waiting for its back-off


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    def __init__(self, children: dict[str, Spawn], data_dir: Path) -> None:
        self.children = {name: Child(name, spawn) for name, spawn in children.items()}
        self.restarts_path = data_dir.joinpath(*RESTARTS_FILE)

    def start(self) -> None:
        self._write_restarts()
        for child in self.children.values():
            self._launch(child)

    def _launch(self, child: Child) -> None:
        child.proc = child.spawn()
        child.started_at = time.monotonic()
        child.restart_at = None

    def _write_restarts(self) -> None:
        # Whole-file replace: a service reading it at a scrape never sees half a file.
        self.restarts_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.restarts_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({c.name: c.restarts for c in self.children.values()}))
        os.replace(tmp, self.restarts_path)

    def poll(self) -> None:
        """One round: notice children that exited, restart those whose back-off has passed."""
        now = time.monotonic()
        for child in self.children.values():
            proc = child.proc
            if child.restart_at is None and proc is not None and proc.poll() is not None:
                # Its workers (a uvicorn parent's) may outlive it and hold the port: end the whole group.
                _kill_group(proc.pid, signal.SIGKILL)
                if now - child.started_at >= STABLE_S:
                    child.backoff_s = BACKOFF_MIN_S
                child.restart_at = now + child.backoff_s
                log.warning("service_exited", service=child.name, code=proc.returncode, restart_in_s=child.backoff_s)
                child.backoff_s = min(BACKOFF_MAX_S, child.backoff_s * 2)
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._launch(child)
                self._write_restarts()
                log.warning("service_restarted", service=child.name, restarts=child.restarts)

    def stop(self, grace_s: float = 15.0) -> None:
        running = [c.proc for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of each group (a worker slow to end, an orphan): killed.
        for child in self.children.values():
            if child.proc is not None:
                _kill_group(child.proc.pid, signal.SIGKILL)
                child.proc.poll()

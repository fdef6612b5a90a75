"""Two instances of each service (and of the agents' importer) on one database and one object store, behind a
round-robin proxy per service (tests/support/proxy.py), as a Kubernetes Service puts pods behind one address.

Each instance is a uvicorn process started the way `alpr up` starts one (alpr/runner.py), with its own database
role; the services find each other through the proxies, and all but access verify tokens against access's key set
(`ALPR_JWKS_URL`), as in deploy/. ingest's instances and the importers share one spool folder (the shared volume).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx

from alpr.bootstrap import ensure_service_clients
from alpr.roles import prepare_database
from tests.support.proxy import RoundRobinProxy
from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3, free_port_pairs

SERVICES = ("access", "ingest", "recognition", "hotlist")
INSTANCES = 2
PASSWORD = "a long enough passphrase"
AGENCY = "MN0271200"


@dataclass
class Replicas:
    data_dir: Path
    admin_url: str  # the administrator's database URL (the CLI's, the test's own checks)
    env: dict[str, str]
    ports: dict[str, list[int]]
    proxies: dict[str, RoundRobinProxy]
    service_urls: dict[str, str]
    clients: dict[str, tuple[str, str]]  # each calling service's own identity (client id, secret)
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """The one address of a service (its proxy)."""
        return self.proxies[service].url

    def direct(self, service: str, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[service][i]}"

    # ---- processes ----

    def _service_env(self, service: str) -> dict[str, str]:
        env = {**self.env, "ALPR_DATABASE_URL": self.service_urls[service]}
        if service in self.clients:  # each calling service its own identity
            env["ALPR_SERVICE_CLIENT_ID"], env["ALPR_SERVICE_CLIENT_SECRET"] = self.clients[service]
        if service != "access":  # the others verify tokens against access's key set, as in deploy/
            env["ALPR_JWKS_URL"] = f"{self.url('access')}/.well-known/jwks.json"
        return env

    def _log(self, name: str) -> object:
        return open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child process owns it

    def spawn(self, service: str, i: int) -> subprocess.Popen[bytes]:
        if service == "ingest-agents":
            cmd = [sys.executable, "-m", "services.ingest.agents"]
            env = self._service_env("ingest")
        else:
            cmd = [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app",
                   "--host", "127.0.0.1", "--port", str(self.ports[service][i]), "--no-access-log",
                   "--no-proxy-headers", "--timeout-graceful-shutdown", "5"]  # fmt: skip
            env = self._service_env(service)
        log = self._log(f"{service}-{i}")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # type: ignore[arg-type]
        self.procs.setdefault(service, [None, None])[i] = proc  # type: ignore[list-item]
        return proc

    def start_all(self) -> None:
        for service in (*SERVICES, "ingest-agents"):
            for i in range(INSTANCES):
                self.spawn(service, i)

    def wait_ready(self, service: str, i: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.procs[service][i]
            if proc.poll() is not None:
                raise RuntimeError(f"{service}-{i} exited: see {self.data_dir}/{service}-{i}.log")
            try:
                if httpx.get(f"{self.direct(service, i)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{service}-{i} not ready in {timeout_s} s")

    def wait_all_ready(self) -> None:
        for service in SERVICES:
            for i in range(INSTANCES):
                self.wait_ready(service, i)

    def kill(self, service: str, i: int) -> None:
        """SIGKILL: no shutdown, no flush, as a lost node."""
        proc = self.procs[service][i]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def signal_all(self, service: str, sig: int) -> None:
        for proc in self.procs[service]:
            os.killpg(proc.pid, sig)

    def stop(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
        for procs in self.procs.values():
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        for proxy in self.proxies.values():
            proxy.stop()

    # ---- the operator's CLI, on the administrator's URL ----

    def alpr(self, *args: str, stdin: str | None = None) -> str:
        env = {**self.env, "ALPR_DATABASE_URL": self.admin_url}
        done = subprocess.run([sys.executable, "-m", "alpr.cli", *args], env=env, input=stdin, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_person(self, badge: str, role: str = "officer") -> str:
        """A trained person of AGENCY; their user name (`p-<badge>`)."""
        username = f"p-{badge}"
        person = ["--username", username, "--name", "R. Eplica", "--agency", AGENCY, "--badge", badge]
        self.alpr("access", "add-user", *person, "--role", role, "--password-stdin", stdin=f"{PASSWORD}\n")
        today = date.today()
        course = ["--course", "ALPR operation and data policy", "--completed", str(today - timedelta(days=1))]
        self.alpr("access", "add-training", "--user", badge, *course, "--expires", str(today + timedelta(days=364)))
        return username

    def add_agent(self, name: str) -> str:
        pole = ["--name", name, "--agency", AGENCY, "--kind", "fixed", "--lat", "45", "--lon", "-93"]
        token: str = json.loads(self.alpr("agents", "add", *pole, "--placed-on", str(date.today())))["token"]
        return token


def start_replicas(data_dir: Path, admin_url: str, passwords: dict[str, str], s3: WeedS3, **settings: str) -> Replicas:
    data_dir.mkdir(parents=True, exist_ok=True)
    service_urls = prepare_database(admin_url, passwords)
    clients = ensure_service_clients(admin_url, data_dir)
    flat = free_port_pairs(len(SERVICES) * INSTANCES)
    ports = {s: flat[k * INSTANCES : (k + 1) * INSTANCES] for k, s in enumerate(SERVICES)}
    proxies = {s: RoundRobinProxy(ports[s]).start() for s in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPR_") and k != "TEST_DATABASE_URL"}
    env.update(
        ALPR_ENVIRONMENT="test",
        ALPR_DATA_DIR=str(data_dir),
        ALPR_LOG_LEVEL="WARNING",
        ALPR_JWT_KEYS_DIR=str(data_dir / "keys"),  # access's (one Secret mounted by every access pod)
        ALPR_S3_ENDPOINT=s3.endpoint,
        ALPR_S3_ACCESS_KEY=ACCESS_KEY,
        ALPR_S3_SECRET_KEY=SECRET_KEY,
        ALPR_S3_BUCKET=BUCKET,
        ALPR_LOGIN_THROTTLE_STORAGE="postgresql",
        ALPR_PASSWORD_TIME_COST="1",
        ALPR_PASSWORD_MEMORY_KIB="8192",
        ALPR_PASSWORD_PARALLELISM="1",
        ALPR_INGEST_AGENT_IMPORT_PROCESS="true",
        ALPR_RECOGNITION_WORKERS="1",
        ALPR_AUDIT_CHECKPOINT_SCHEDULED="false",
        **{f"ALPR_{s.upper()}_URL": proxies[s].url for s in SERVICES},
        **settings,
    )
    from shared.keys import ensure_signing_key

    ensure_signing_key(data_dir / "keys", "ES256")
    replicas = Replicas(data_dir, admin_url, env, ports, proxies, service_urls, clients)
    replicas.start_all()
    try:
        replicas.wait_all_ready()
    except Exception:
        replicas.stop()
        raise
    return replicas

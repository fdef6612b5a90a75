"""`alpr up`: PostgreSQL (embedded unless configured), migrations, keys, the four services under uvicorn, and the
camera agents' importer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from functools import partial
from typing import Any

import httpx
import structlog

from alpr import settings_file
from alpr.embedded import embedded_database_url
from alpr.roles import prepare_database, role_passwords
from alpr.supervisor import Spawn, Supervisor
from shared.keys import ensure_signing_key
from shared.secret_files import url_signing_secret
from shared.service_callers import CALLING_SERVICES
from shared.settings import SERVICES, Settings

log = structlog.get_logger("alpr.runner")


def prepare(settings: Settings) -> tuple[dict[str, str], Any]:
    """Database, roles, schema and keys ready; returns the environment the services run with (and the server).

    Each service's own database URL (its least-privilege role) is `ALPR_DATABASE_URL_<SERVICE>` in the returned
    environment; `_spawn` hands it to that service as its `ALPR_DATABASE_URL`."""
    # Not 0700 itself: the embedded server may run as its own system user and needs to reach data_dir/pg.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["ALPR_DATA_DIR"] = str(settings.data_dir.resolve())
    server = None
    url = settings.database_url
    if url is None:
        url, server = embedded_database_url(settings.data_dir)
        log.info("embedded_postgres_started", data=str(settings.data_dir / "pg"))
    env["ALPR_DATABASE_URL"] = url
    settings_file.write(settings)
    passwords = {k: v.get_secret_value() for k, v in settings.db_role_passwords.items()}
    service_urls = prepare_database(url, role_passwords(settings.data_dir, passwords))
    for service, service_url in service_urls.items():
        env[f"ALPR_DATABASE_URL_{service.upper()}"] = service_url
    log.info("migrations_applied", roles=True)
    if not settings.jwks_url:
        key = ensure_signing_key(settings.keys_dir, settings.jwt_algorithm)
        log.info("signing_key_ready", kid=key.kid)
    url_signing_secret(settings, create=True)
    if not settings.s3_endpoint:
        settings.objects_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (settings.service_client_id and settings.service_client_secret):
        from alpr.bootstrap import ensure_service_clients

        # Each calling service gets its own identity (_service_env hands each only its own).
        for service, (client_id, secret) in ensure_service_clients(url, settings.data_dir).items():
            env[f"ALPR_SERVICE_CLIENT_ID_{service.upper()}"] = client_id
            env[f"ALPR_SERVICE_CLIENT_SECRET_{service.upper()}"] = secret
            log.info("service_client_ready", service=service, client_id=client_id)
    return env, server


def _service_env(env: dict[str, str], service: str) -> dict[str, str]:
    # The service sees only its own role's URL, never the administrator's.
    own = env[f"ALPR_DATABASE_URL_{service.upper()}"]
    per_service = {
        f"ALPR_SERVICE_CLIENT_{part}_{name.upper()}" for part in ("ID", "SECRET") for name in CALLING_SERVICES
    }
    client = {k.rsplit("_", 1)[0]: env[k] for k in per_service if k.endswith(f"_{service.upper()}") and k in env}
    env = {k: v for k, v in env.items() if not k.startswith("ALPR_DATABASE_URL") and k not in per_service}
    env["ALPR_DATABASE_URL"] = own
    # Its own service identity only (ingest's or hotlist's), never another service's.
    env.update(client)
    return env


def _spawn(service: str, settings: Settings, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Ingest runs several processes (uvicorn restarts a worker that dies), so one crash does not stop intake.
    workers = (
        ["--workers", str(settings.ingest_processes)] if service == "ingest" and settings.ingest_processes > 1 else []
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"services.{service}.main:create_app",
            "--host",
            settings.host,
            "--port",
            str(settings.port_of(service)),  # type: ignore[arg-type]
            "--no-access-log",
            # Forwarding headers are believed only from ALPR_TRUSTED_PROXIES, by the app itself (shared/app.py).
            "--no-proxy-headers",
            "--timeout-graceful-shutdown",
            "10",
            *workers,
        ],
        env=_service_env(env, service),
        process_group=0,  # its own group: the supervisor ends a killed parent's orphaned workers with it
    )


def _spawn_agent_importer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The camera agents' importer, a process of its own beside ingest's workers (services/ingest/agents/__main__.py),
    with ingest's database role."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.ingest.agents"], env=_service_env(env, "ingest"), process_group=0
    )


def wait_ready(settings: Settings, timeout_s: float = 60.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    status: dict[str, int] = {}
    while time.monotonic() < deadline:
        for service in SERVICES:
            if status.get(service) == 200:
                continue
            try:
                status[service] = httpx.get(f"{settings.url_of(service)}/readyz", timeout=2).status_code  # type: ignore[arg-type]
            except httpx.HTTPError:
                status[service] = 0
        if all(code == 200 for code in status.values()) and len(status) == len(SERVICES):
            break
        time.sleep(0.5)
    return status


def next_steps(settings: Settings) -> str:
    """What a newcomer does next, printed once everything answers."""
    today = date.today()
    next_year = today + timedelta(days=365)
    urls = "\n".join(f"  {name:<12} {settings.url_of(name)}  (API: {settings.url_of(name)}/docs)" for name in SERVICES)  # type: ignore[arg-type]
    return f"""
ALPR is up. Data folder: {settings.data_dir.resolve()}
{urls}

Next steps, in another terminal in this folder (`make alpr ARGS="..."` runs `alpr` with the settings saved in
{settings.data_dir / settings_file.SETTINGS_FILE}):
  1. The first administrator:
       make alpr ARGS="access create-admin --username admin --name 'First Admin' --agency MN0271200"
  2. An officer, and the training that lets them log in:
       make alpr ARGS="access add-user --username jdoe --name 'J. Doe' --agency MN0271200 --badge 4711 --role officer"
       make alpr ARGS="access add-training --user 4711 --course 'ALPR policy' --completed {today} --expires {next_year}"
  3. A first read: README.md, "First admin and a first read in five minutes".
Manual: README.md; operating, alerts and backups: README.md "Operating it"; API docs at each /docs above.
Ctrl-C stops everything.
"""


def up(settings: Settings) -> int:
    env, server = prepare(settings)
    # Ingest's workers only accept the camera agents' posts; a process of their own imports them.
    env["ALPR_INGEST_AGENT_IMPORT_PROCESS"] = "true"
    children: dict[str, Spawn] = {service: partial(_spawn, service, settings, env) for service in SERVICES}
    children["ingest-agents"] = partial(_spawn_agent_importer, env)
    supervisor = Supervisor(children, settings.data_dir)
    supervisor.start()
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        status = wait_ready(settings)
        for service in SERVICES:
            log.info("service", name=service, url=settings.url_of(service), readyz=status.get(service))  # type: ignore[arg-type]
        if any(code != 200 for code in status.values()):
            log.error("services_not_ready", status=status)
        log.info("alpr_up", hint="Ctrl-C stops everything")
        sys.stdout.write(next_steps(settings))
        sys.stdout.flush()
        # A child that exits is restarted (alpr/supervisor.py); only Ctrl-C or SIGTERM ends them all.
        while not stopping:
            supervisor.poll()
            time.sleep(0.25)
        return 0
    finally:
        supervisor.stop()
        if server is not None:
            server.cleanup()
        log.info("alpr_stopped")

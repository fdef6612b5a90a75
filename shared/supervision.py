"""`alpr_service_restarts`: how often `alpr up`'s supervisor restarted this service (and, for ingest, the agents'
importer). The runner has no port of its own; it writes its counts to `<data>/run/restarts.json` (alpr/supervisor.py)
and each service reports its own at scrape time. Absent file (not under `alpr up`): nothing reported."""

from __future__ import annotations

import json

from fastapi import FastAPI
from prometheus_client import Gauge

RESTARTS_FILE = ("run", "restarts.json")
RESTARTS = Gauge(
    "alpr_service_restarts",
    "Times `alpr up` restarted the process since it started (ingest also reports ingest-agents, its importer)",
    ["service"],
)
# The processes each service reports: its own, and ingest the importer that runs with its role.
REPORTED = {"ingest": ("ingest", "ingest-agents")}


async def service_restarts(app: FastAPI) -> None:
    service: str = app.state.service
    path = app.state.settings.data_dir.joinpath(*RESTARTS_FILE)
    try:
        counts = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for name in REPORTED.get(service, (service,)):
        if isinstance(counts.get(name), int):
            RESTARTS.labels(name).set(counts[name])

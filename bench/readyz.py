"""Requests/s of `/readyz` on one service (one uvicorn worker): the harness's own figure."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from bench.harness import closed_loop, database, serve


def run(duration_s: float = 5.0, concurrency: int = 16) -> dict[str, Any]:
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        env = {"ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": data_dir}
        with serve("ingest", env) as base:
            result = asyncio.run(
                closed_loop(lambda c: c.get("/readyz"), base_url=base, concurrency=concurrency, duration_s=duration_s)
            )
    return {"service": "ingest", "workers": 1, **result}

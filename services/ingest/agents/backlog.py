"""The camera agents' backlog: posts accepted but not yet imported (spool bytes), and reads imported but not yet
matched. Both are metrics (prometheus_client's default registry, exposed on /metrics); a backlog over
`ingest_agent_backlog_ready_max` reads is a /readyz warning, so an operator sees the importer falling behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.agents import spool as spool_files

SPOOL_BYTES = Gauge(
    "alpr_ingest_agent_spool_backlog_bytes", "Accepted camera-agent posts not yet imported, in spool bytes"
)
UNMATCHED = Gauge(
    "alpr_ingest_agent_unmatched_reads", "Camera-agent reads imported but not yet matched against the hot list"
)


async def unmatched(engine: AsyncEngine, cap: int) -> int:
    """Agent reads waiting to be matched, counted up to `cap` + 1 (from the partial index; cheap at any backlog)."""
    async with engine.connect() as conn:
        n = await conn.scalar(
            text("SELECT count(*) FROM (SELECT 1 FROM ingest.agent_reads WHERE finish_pending LIMIT :n) AS p"),
            {"n": cap + 1},
        )
    count = int(n or 0)
    UNMATCHED.set(count)
    return count


async def spool_backlog(engine: AsyncEngine, spool_dir: Path) -> int:
    """Accepted posts' spool bytes not yet imported, whichever process imports them."""
    async with engine.connect() as conn:
        rows = await conn.execute(text('SELECT segment, "offset" FROM ingest.agent_spool_offsets'))
        offsets = {r.segment: r.offset for r in rows}
    n = await asyncio.to_thread(spool_files.pending_bytes, spool_dir, offsets)
    SPOOL_BYTES.set(n)
    return n


async def agent_backlog(app: FastAPI) -> str | None:
    """A /readyz warning when the agents' reads wait to be matched faster than the importer works them off."""
    cap: int = app.state.settings.ingest_agent_backlog_ready_max
    try:
        n = await asyncio.wait_for(unmatched(app.state.engine, cap), 2.0)
        # From the files: the importer may be another worker, or a process of its own (ingest_agent_import_process).
        spool = await asyncio.wait_for(spool_backlog(app.state.engine, app.state.agents.spool_dir), 2.0)
    except Exception:  # noqa: BLE001 - PostgreSQL down or not migrated: its own check reports that, not this one
        return None
    if n > cap:
        return f"more than {cap} camera-agent reads wait to be matched"
    if spool > app.state.settings.ingest_agent_import_bytes * 16:
        return f"{int(spool)} bytes of camera-agent posts wait to be imported"
    return None

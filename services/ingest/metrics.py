"""Ingest's Prometheus figures (served at /metrics by shared.metrics): reads in and their outcome, reads waiting
for recognition or a match, the camera agents' spool and quarantine. No plate, unit or officer in any label."""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from sqlalchemy import text

from services.ingest.agents.backlog import spool_backlog
from services.ingest.agents.spool import spool_stats
from services.ingest.schemas import ReadResult
from services.ingest.subjects import overdue_count
from shared.errors import AppError

READS = Counter(
    "alpr_ingest_reads_total",
    "Reads posted by the cars, by outcome: complete (stored, recognised and matched), pending (stored; recognition "
    "or match still to do), duplicate (a retry), refused (4xx), unavailable (503)",
    ["outcome"],
)
PENDING = Gauge("alpr_ingest_pending_reads", "Stored reads still waiting for recognition or a match", ["work"])
SPOOL_BYTES = Gauge("alpr_ingest_agent_spool_bytes", "Camera agents' posts received and not yet imported (bytes)")
SPOOL_SEGMENTS = Gauge("alpr_ingest_agent_spool_segments", "Spool segment files not yet imported")
SAFE_AT_HOME_OVERDUE = Gauge(
    "alpr_ingest_safe_at_home_overdue",
    "Safe at Home requests waiting for a second supervisor past ALPR_INGEST_SAFE_AT_HOME_CONFIRM_DAYS",
)
PURGE_FINISHED = Gauge(
    "alpr_ingest_purge_last_finished_timestamp_seconds",
    "When the newest retention purge run of ingest started that finished (0: none ever did)",
)
ORPHANS_REMOVED = Counter(
    "alpr_ingest_orphan_photos_removed_total",
    "Photos no read referred to (a worker killed between upload and commit), removed by this process's purge",
)
QUARANTINE = Gauge("alpr_ingest_agent_quarantine_posts", "Camera agents' posts kept in quarantine (not reads)")


async def counted(work: Awaitable[ReadResult]) -> ReadResult:
    """Count one read's outcome, whatever it is."""
    try:
        result = await work
    except AppError as exc:
        READS.labels("unavailable" if exc.status_code == 503 else "refused").inc()
        raise
    READS.labels("duplicate" if result.duplicate else result.status).inc()
    return result


async def ingest_backlog(app: FastAPI) -> None:
    """Scrape-time probe: pending work (a partial index keeps it cheap), quarantine, and the spool on disk."""
    async with app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE recognition_pending) AS recognition, "
                    "count(*) FILTER (WHERE match_pending) AS match FROM ingest.reads "
                    "WHERE recognition_pending OR match_pending"
                )
            )
        ).one()
        quarantined = (await conn.execute(text("SELECT count(*) FROM ingest.agent_quarantine"))).scalar_one()
        purged = (
            await conn.execute(
                text(
                    "SELECT coalesce(extract(epoch FROM max(started_at)), 0) FROM ingest.purge_runs "
                    "WHERE status IN ('finished', 'partial')"
                )
            )
        ).scalar_one()
    PURGE_FINISHED.set(float(purged))
    PENDING.labels("recognition").set(row.recognition)
    PENDING.labels("match").set(row.match)
    QUARANTINE.set(quarantined)
    SAFE_AT_HOME_OVERDUE.set(await overdue_count(app.state.engine, app.state.settings.ingest_safe_at_home_confirm_days))
    spool = spool_stats(app.state.agents.spool_dir)
    SPOOL_BYTES.set(spool["bytes"])
    await spool_backlog(app.state.engine, app.state.agents.spool_dir)  # sets its own gauge
    SPOOL_SEGMENTS.set(spool["segments"])

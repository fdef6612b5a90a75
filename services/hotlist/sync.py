"""The sync job: fetch, parse, load a new version with COPY into a fresh partition, switch atomically.

One syncer at a time across every worker and the CLI: a session-level PostgreSQL advisory lock. Each attempt is
recorded in `hotlist.sync_runs`; a rejected or failed attempt leaves the old list in force and raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.hotlist.fetch import BcaClient, FetchError
from services.hotlist.parser import COPY_COLUMNS, FormatError, Parsed, parse
from shared.settings import Settings

log = structlog.get_logger(__name__)

SYNC_LOCK_SQL = "hashtext('hotlist.sync')"
NOTIFY_CHANNEL = "hotlist_version"


class SyncFailed(Exception):
    """The list could not be refreshed; the old version stays in force."""

    def __init__(self, outcome: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.details = details or {}


@dataclass
class SyncResult:
    outcome: str  # loaded | unchanged | busy
    version: int | None
    entries: int | None = None
    bad_rows: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)
    unknown_codes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)  # fetch, parse, load


async def _record_run(engine: AsyncEngine, started: datetime, trigger: str, outcome: str, **values: Any) -> None:
    import json

    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO hotlist.sync_runs (id, started_at, finished_at, trigger, outcome, version_id, entries, "
                "bad_rows, error, details) VALUES (gen_random_uuid(), :started, now(), :trigger, :outcome, "
                ":version, :entries, :bad, :error, CAST(:details AS jsonb))"
            ),
            {
                "started": started,
                "trigger": trigger,
                "outcome": outcome,
                "version": values.get("version"),
                "entries": values.get("entries"),
                "bad": values.get("bad_rows"),
                "error": values.get("error"),
                "details": json.dumps(values.get("details") or {}),
            },
        )


async def _audit(conn: AsyncConnection, action: str, outcome: str, details: dict[str, Any], count: int | None) -> None:
    import json

    # shared.audit.record needs an ORM session; the load runs on a bare connection, so insert the same row.
    await conn.execute(
        text(
            "INSERT INTO audit.audit_log (id, service, actor, actor_roles, action, object_type, object_ids, "
            "outcome, record_count, details) VALUES (gen_random_uuid(), 'hotlist', 'hotlist-sync', '{}', :action, "
            "'hotlist_version', :ids, :outcome, :count, CAST(:details AS jsonb))"
        ),
        {
            "action": action,
            "ids": [str(details.get("version"))] if details.get("version") else [],
            "outcome": outcome,
            "count": count,
            "details": json.dumps(details),
        },
    )


async def load_version(
    engine: AsyncEngine, parsed: Parsed, *, etag: str | None, last_modified: str | None, keep: int
) -> int:
    """COPY the rows into a new partition, index it and make it current, all in one transaction."""
    async with engine.begin() as conn:
        version = (
            await conn.execute(
                text(
                    "INSERT INTO hotlist.list_versions (is_current, entries, bad_rows, sha256, etag, last_modified, "
                    "dropped) VALUES (false, :entries, :bad, :sha, :etag, :lm, false) RETURNING id"
                ),
                {
                    "entries": parsed.good,
                    "bad": parsed.bad_count,
                    "sha": parsed.sha256,
                    "etag": etag,
                    "lm": last_modified,
                },
            )
        ).scalar_one()
        part = f"bca_entries_v{int(version)}"
        await conn.execute(
            text(f"CREATE TABLE hotlist.{part} PARTITION OF hotlist.bca_entries FOR VALUES IN ({int(version)})")
        )
        # COPY leaves version_id out: the partition's own default fills it.
        await conn.execute(text(f"ALTER TABLE hotlist.{part} ALTER COLUMN version_id SET DEFAULT {int(version)}"))
        raw = await conn.get_raw_connection()
        await raw.driver_connection.copy_to_table(  # type: ignore[union-attr]
            part, source=io.BytesIO(parsed.csv), columns=list(COPY_COLUMNS), schema_name="hotlist", format="csv"
        )
        # Indexes after the COPY: building them once is far cheaper than maintaining them row by row.
        # Matching runs in memory; the database looks rows up by NIC only ("still current?", the car's list).
        await conn.execute(text(f"CREATE UNIQUE INDEX {part}_nic ON hotlist.{part} (nic)"))
        await conn.execute(text("UPDATE hotlist.list_versions SET is_current = false WHERE is_current"))
        await conn.execute(text("UPDATE hotlist.list_versions SET is_current = true WHERE id = :v"), {"v": version})
        old = (
            await conn.execute(
                text(
                    "SELECT id FROM hotlist.list_versions WHERE NOT dropped AND id <= "
                    "(SELECT id FROM hotlist.list_versions WHERE NOT dropped ORDER BY id DESC OFFSET :keep LIMIT 1)"
                ),
                {"keep": keep},
            )
        ).scalars()
        for old_id in list(old):
            await conn.execute(text(f"DROP TABLE IF EXISTS hotlist.bca_entries_v{int(old_id)}"))
            await conn.execute(text("UPDATE hotlist.list_versions SET dropped = true WHERE id = :v"), {"v": old_id})
        await _audit(
            conn,
            "hotlist.load",
            "ok",
            {"version": int(version), "bad_rows": parsed.bad_count, "unknown_codes": parsed.unknown_codes},
            parsed.good,
        )
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}, '{int(version)}'"))
    return int(version)


async def sync_once(
    engine: AsyncEngine,
    settings: Settings,
    *,
    trigger: str = "schedule",
    transport: httpx.AsyncBaseTransport | None = None,
) -> SyncResult:
    started = datetime.now(UTC)
    clock = asyncio.get_running_loop().time
    t0 = clock()
    async with engine.connect() as lock_conn:
        got = (await lock_conn.execute(text(f"SELECT pg_try_advisory_lock({SYNC_LOCK_SQL})"))).scalar_one()
        await lock_conn.commit()
        if not got:
            return SyncResult("busy", None)
        try:
            return await _sync_locked(engine, settings, trigger, started, t0, transport)
        finally:
            await lock_conn.execute(text(f"SELECT pg_advisory_unlock({SYNC_LOCK_SQL})"))
            await lock_conn.commit()


async def _sync_locked(
    engine: AsyncEngine,
    settings: Settings,
    trigger: str,
    started: datetime,
    t0: float,
    transport: httpx.AsyncBaseTransport | None,
) -> SyncResult:
    clock = asyncio.get_running_loop().time
    async with engine.connect() as conn:
        current = (
            await conn.execute(
                text("SELECT id, sha256, etag, last_modified FROM hotlist.list_versions WHERE is_current")
            )
        ).first()

    async def fail(outcome: str, message: str, details: dict[str, Any] | None = None) -> SyncFailed:
        await _record_run(engine, started, trigger, outcome, error=message, details=details)
        log.error("hotlist_sync_failed", outcome=outcome, error=message)
        return SyncFailed(outcome, message, details)

    async def confirm_unchanged() -> SyncResult:
        assert current is not None
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE hotlist.list_versions SET verified_at = now() WHERE id = :v"), {"v": current.id}
            )
        await _record_run(engine, started, trigger, "unchanged", version=current.id)
        return SyncResult("unchanged", current.id, seconds=round(clock() - t0, 3))

    try:
        fetched = await BcaClient(settings, transport=transport).fetch(
            etag=current.etag if current else None, last_modified=current.last_modified if current else None
        )
    except FetchError as exc:
        raise await fail("failed", str(exc)) from None
    if fetched.body is None:
        if current is None:
            raise await fail("failed", "source answered 304 but no list is loaded")
        return await confirm_unchanged()
    timings = {"fetch": round(clock() - t0, 3)}
    body = fetched.body
    # The same content under new validators (a server without conditional requests): no new version.
    if current is not None and await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest()) == current.sha256:
        return await confirm_unchanged()
    try:
        parsed = await asyncio.to_thread(parse, body)
    except FormatError as exc:
        raise await fail("rejected", f"not a hot-list extract: {exc}") from None
    bad = [{"line": b.line, "reason": b.reason} for b in parsed.bad]
    if parsed.good == 0 or parsed.bad_share > settings.hotlist_max_bad_share:
        details = {"bad_rows": parsed.bad_count, "good_rows": parsed.good, "bad": bad[:100]}
        raise await fail(
            "rejected",
            f"{parsed.bad_count} of {parsed.bad_count + parsed.good} rows are bad "
            f"(limit {settings.hotlist_max_bad_share:.0%}): the previous list stays in force",
            details,
        )
    timings["parse"] = round(clock() - t0 - timings["fetch"], 3)
    for row in bad:
        log.warning("hotlist_bad_row", line=row["line"], reason=row["reason"])
    version = await load_version(
        engine, parsed, etag=fetched.etag, last_modified=fetched.last_modified, keep=settings.hotlist_versions_kept
    )
    timings["load"] = round(clock() - t0 - timings["fetch"] - timings["parse"], 3)
    await _record_run(
        engine,
        started,
        trigger,
        "loaded",
        version=version,
        entries=parsed.good,
        bad_rows=parsed.bad_count,
        details={"bad": bad[:100], "unknown_codes": parsed.unknown_codes},
    )
    log.info("hotlist_loaded", version=version, entries=parsed.good, bad_rows=parsed.bad_count)
    return SyncResult(
        "loaded",
        version,
        entries=parsed.good,
        bad_rows=parsed.bad_count,
        bad=bad,
        unknown_codes=parsed.unknown_codes,
        seconds=round(clock() - t0, 3),
        timings_s=timings,
    )


async def recently_synced(engine: AsyncEngine, within_s: float) -> bool:
    """Another worker synced (or tried) within the interval: this one need not."""
    async with engine.connect() as conn:
        last = (await conn.execute(text("SELECT max(finished_at) FROM hotlist.sync_runs"))).scalar_one()
    return last is not None and (datetime.now(UTC) - last).total_seconds() < within_s

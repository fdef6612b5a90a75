"""The sync job: fetch, parse, load a new version with COPY into a fresh partition, switch atomically.

One syncer at a time across every worker and the CLI: a session-level PostgreSQL advisory lock. Each attempt is
recorded in `hotlist.sync_runs`; a rejected or failed attempt leaves the old list in force and raises.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.hotlist.fetch import BcaClient, FetchError
from services.hotlist.metrics import SYNCS
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

    SYNCS.labels(outcome).inc()
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


async def _audit(
    conn: AsyncConnection,
    action: str,
    outcome: str,
    details: dict[str, Any],
    count: int | None,
    *,
    actor: str = "hotlist-sync",
) -> None:
    import json

    # shared.audit.record needs an ORM session; the load runs on a bare connection, so insert the same row.
    await conn.execute(
        text(
            "INSERT INTO audit.audit_log (id, service, actor, actor_roles, action, object_type, object_ids, "
            "outcome, record_count, details) VALUES (gen_random_uuid(), 'hotlist', :actor, '{}', :action, "
            "'hotlist_version', :ids, :outcome, :count, CAST(:details AS jsonb))"
        ),
        {
            "actor": actor,
            "action": action,
            "ids": [str(details.get("version"))] if details.get("version") else [],
            "outcome": outcome,
            "count": count,
            "details": json.dumps(details),
        },
    )


class _Refused(Exception):
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed


class _Incomplete(Exception):
    """The file is not the whole extract (cut off, or far fewer rows than the list in force)."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


@dataclass
class Completeness:
    """What a new file must show before it replaces the list in force (a list never shrinks by accident)."""

    current_entries: int | None  # the list in force; None: nothing loaded yet
    max_drop_share: float
    accept_drop: bool = False  # an operator's explicit `alpr hotlist sync --accept-drop`, audited

    def check(self, body: bytes, parsed: Parsed) -> dict[str, Any]:
        """Raises _Incomplete; returns what the load's audit entry records of an accepted drop."""
        if body and not body.endswith(b"\n"):
            # A cut-off transfer served as a complete 200 ends inside a row: the last line has no end.
            raise _Incomplete(
                "the extract's last line does not end with a newline: the file was cut off",
                {"rows": parsed.good + parsed.bad_count},
            )
        current = self.current_entries
        if not current or parsed.good >= current * (1 - self.max_drop_share):
            return {}
        details = {"entries_in_force": current, "entries_new": parsed.good, "max_drop_share": self.max_drop_share}
        if self.accept_drop:
            return {"accepted_drop": details}
        raise _Incomplete(
            f"the extract has {parsed.good} entries, {1 - parsed.good / current:.0%} fewer than the {current} in "
            f"force (limit {self.max_drop_share:.0%}): a cut-off file? `alpr hotlist sync --accept-drop` accepts it",
            details,
        )


async def load_version(
    engine: AsyncEngine,
    body: bytes,
    *,
    sha256: str,
    etag: str | None,
    last_modified: str | None,
    keep: int,
    max_bad_share: float,
    timings: dict[str, float] | None = None,
    completeness: Completeness | None = None,
    actor: str = "hotlist-sync",
) -> tuple[int, Parsed]:
    """Parse and COPY at once (the parser thread feeds the COPY), index the new partition and make it current, all
    in one transaction: a refused file (not an extract, too many bad rows) rolls back and leaves no trace."""
    loop = asyncio.get_running_loop()
    clock = loop.time
    t0 = clock()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    def sink(chunk: bytes) -> None:
        loop.call_soon_threadsafe(chunks.put_nowait, chunk)

    def work() -> Parsed:
        try:
            return parse(body, sink=sink)
        finally:
            loop.call_soon_threadsafe(chunks.put_nowait, None)

    async def source() -> AsyncIterator[bytes]:
        while (chunk := await chunks.get()) is not None:
            yield chunk

    async with engine.begin() as conn:
        # Versions are numbered without gaps (1, 2, 3 …): the next number is taken inside this transaction, so a
        # refused file, rolled back, uses none (a sequence would). The lock keeps a second loader waiting; readers
        # of list_versions are not blocked.
        await conn.execute(text("LOCK TABLE hotlist.list_versions IN EXCLUSIVE MODE"))
        version = (
            await conn.execute(
                text(
                    "INSERT INTO hotlist.list_versions (id, is_current, entries, bad_rows, sha256, etag, "
                    "last_modified, dropped) SELECT coalesce(max(id), 0) + 1, false, 0, 0, :sha, :etag, :lm, false "
                    "FROM hotlist.list_versions RETURNING id"
                ),
                {"sha": sha256, "etag": etag, "lm": last_modified},
            )
        ).scalar_one()
        part = f"bca_entries_v{int(version)}"
        # Through the owner's function (the service's role owns no table); COPY leaves version_id out and the
        # partition's own default, set there, fills it.
        await conn.execute(text("SELECT hotlist.create_entries_partition(:v)"), {"v": int(version)})
        raw = await conn.get_raw_connection()
        parsing = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            await raw.driver_connection.copy_to_table(  # type: ignore[union-attr]
                part, source=source(), columns=list(COPY_COLUMNS), schema_name="hotlist", format="csv"
            )
        finally:
            parsed = await parsing  # a FormatError goes up from here and rolls the transaction back
        accepted = completeness.check(body, parsed) if completeness is not None else {}
        if parsed.good == 0 or parsed.bad_share > max_bad_share:
            raise _Refused(parsed)
        if timings is not None:
            timings["parse_copy"] = round(clock() - t0, 3)
        # Index after the COPY: building it once is far cheaper than maintaining it row by row. Matching runs in
        # memory; the database looks rows up by NIC only ("still current?", the car's list).
        await conn.execute(text("SELECT hotlist.index_entries_partition(:v)"), {"v": int(version)})
        await conn.execute(
            text("UPDATE hotlist.list_versions SET entries = :n, bad_rows = :b WHERE id = :v"),
            {"n": parsed.good, "b": parsed.bad_count, "v": version},
        )
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
            await conn.execute(text("SELECT hotlist.drop_entries_partition(:v)"), {"v": int(old_id)})
            await conn.execute(text("UPDATE hotlist.list_versions SET dropped = true WHERE id = :v"), {"v": old_id})
        await _audit(
            conn,
            "hotlist.load",
            "ok",
            {"version": int(version), "bad_rows": parsed.bad_count, "unknown_codes": parsed.unknown_codes, **accepted},
            parsed.good,
            actor=actor,
        )
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}, '{int(version)}'"))
    if timings is not None:
        timings["index_switch"] = round(clock() - t0 - timings["parse_copy"], 3)
    return int(version), parsed


async def sync_once(
    engine: AsyncEngine,
    settings: Settings,
    *,
    trigger: str = "schedule",
    transport: httpx.AsyncBaseTransport | None = None,
    accept_drop: bool = False,
    actor: str = "hotlist-sync",
) -> SyncResult:
    """One attempt. `accept_drop`: load a list far shorter than the one in force (the operator's word, audited as
    `actor`)."""
    started = datetime.now(UTC)
    clock = asyncio.get_running_loop().time
    t0 = clock()
    async with engine.connect() as lock_conn:
        got = (await lock_conn.execute(text(f"SELECT pg_try_advisory_lock({SYNC_LOCK_SQL})"))).scalar_one()
        await lock_conn.commit()
        if not got:
            return SyncResult("busy", None)
        try:
            return await _sync_locked(
                engine, settings, trigger, started, t0, transport, Options(accept_drop=accept_drop, actor=actor)
            )
        finally:
            await lock_conn.execute(text(f"SELECT pg_advisory_unlock({SYNC_LOCK_SQL})"))
            await lock_conn.commit()


@dataclass
class Options:
    accept_drop: bool = False
    actor: str = "hotlist-sync"


async def _sync_locked(
    engine: AsyncEngine,
    settings: Settings,
    trigger: str,
    started: datetime,
    t0: float,
    transport: httpx.AsyncBaseTransport | None,
    options: Options,
) -> SyncResult:
    clock = asyncio.get_running_loop().time
    async with engine.connect() as conn:
        current = (
            await conn.execute(
                text("SELECT id, sha256, etag, last_modified, entries FROM hotlist.list_versions WHERE is_current")
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

    deadline = settings.hotlist_sync_deadline_s
    try:
        # One limit for the whole download, retries included: a source that trickles a byte at a time passes every
        # per-read timeout and would hold the sync lock for good.
        async with asyncio.timeout(deadline):
            fetched = await BcaClient(settings, transport=transport).fetch(
                etag=current.etag if current else None, last_modified=current.last_modified if current else None
            )
    except FetchError as exc:
        raise await fail("failed", str(exc)) from None
    except TimeoutError:
        raise await fail("failed", f"the download passed the sync deadline of {deadline:g} s") from None
    if fetched.body is None:
        if current is None:
            raise await fail("failed", "source answered 304 but no list is loaded")
        return await confirm_unchanged()
    timings = {"fetch": round(clock() - t0, 3)}
    body = fetched.body
    digest = await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
    # The same content under new validators (a server without conditional requests): no new version.
    if current is not None and digest == current.sha256:
        return await confirm_unchanged()
    try:
        version, parsed = await load_version(
            engine,
            body,
            sha256=digest,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            keep=settings.hotlist_versions_kept,
            max_bad_share=settings.hotlist_max_bad_share,
            timings=timings,
            completeness=Completeness(
                current.entries if current else None, settings.hotlist_max_drop_share, options.accept_drop
            ),
            actor=options.actor,
        )
    except FormatError as exc:
        raise await fail("rejected", f"not a hot-list extract: {exc}") from None
    except _Incomplete as exc:
        raise await fail("incomplete", f"{exc}; the previous list stays in force", exc.details) from None
    except _Refused as refused:
        p = refused.parsed
        details = {
            "bad_rows": p.bad_count,
            "good_rows": p.good,
            "bad": [{"line": b.line, "reason": b.reason} for b in p.bad[:100]],
        }
        raise await fail(
            "rejected",
            f"{p.bad_count} of {p.bad_count + p.good} rows are bad "
            f"(limit {settings.hotlist_max_bad_share:.0%}): the previous list stays in force",
            details,
        ) from None
    bad = [{"line": b.line, "reason": b.reason} for b in parsed.bad]
    for row in bad:
        log.warning("hotlist_bad_row", line=row["line"], reason=row["reason"])
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


FAILED_OUTCOMES = ("failed", "rejected", "incomplete")


@dataclass
class SyncHealth:
    failures_in_row: int  # the whole run of failed attempts since the last good one, however long
    latest_outcome: str | None
    latest_error: str | None


async def sync_health(engine: AsyncEngine) -> SyncHealth:
    """The run of failed or refused attempts since the last good one, and the latest attempt."""
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM hotlist.sync_runs WHERE finished_at > coalesce((SELECT max(finished_at) "
                    "FROM hotlist.sync_runs WHERE NOT outcome = ANY(:failed)), '-infinity')"
                ),
                {"failed": list(FAILED_OUTCOMES)},
            )
        ).scalar_one()
        latest = (
            await conn.execute(text("SELECT outcome, error FROM hotlist.sync_runs ORDER BY finished_at DESC LIMIT 1"))
        ).first()
    return SyncHealth(int(count), latest.outcome if latest else None, latest.error if latest else None)


async def recently_synced(engine: AsyncEngine, within_s: float) -> bool:
    """Another worker synced (or tried) within the interval: this one need not."""
    async with engine.connect() as conn:
        last = (await conn.execute(text("SELECT max(finished_at) FROM hotlist.sync_runs"))).scalar_one()
    return last is not None and (datetime.now(UTC) - last).total_seconds() < within_s

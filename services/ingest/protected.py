"""Safe at Home plates (Minn. Stat. 13.824 subd. 3(c)): a participant's reads are destroyed at the time of
collection, and no alert may be issued on them. Every path that stores or finishes a read asks `protected_among`
once its plate is known; `destroy_reads` removes reads with everything that names them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


async def protected_among(engine: AsyncEngine, candidates: Iterable[str | None], agency: str | None = None) -> set[str]:
    """Those of `candidates` (normalized plates) that are Safe at Home plates for `agency`'s reads: a request
    recorded by that agency protects from the moment it is recorded, before any second supervisor confirms it
    (subd. 3(c): "upon receipt of the request"). `agency` None: any agency's."""
    wanted = sorted({p for p in candidates if p})
    if not wanted:
        return set()
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT plate FROM ingest.protected_plates WHERE plate = ANY(:p) "
                "AND (CAST(:a AS text) IS NULL OR agency = :a)"
            ),
            {"p": wanted, "a": agency},
        )
        return {r[0] for r in found}


async def protected_pairs(engine: AsyncEngine, candidates: Iterable[str | None]) -> set[tuple[str, str]]:
    """(plate, agency) for each of `candidates` that is a Safe at Home plate for that agency's reads: one query
    for reads of many agencies (a batch)."""
    wanted = sorted({p for p in candidates if p})
    if not wanted:
        return set()
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return await protected_pairs_on(conn, wanted)


async def protected_pairs_on(conn: AsyncConnection, candidates: Iterable[str | None]) -> set[tuple[str, str]]:
    """protected_pairs on a connection the caller holds (the idempotency lookup asks both at once)."""
    wanted = sorted({p for p in candidates if p})
    if not wanted:
        return set()
    found = await conn.execute(
        text("SELECT plate, agency FROM ingest.protected_plates WHERE plate = ANY(:p)"),
        {"p": wanted},
    )
    return {(r[0], r[1]) for r in found}


async def destroy_reads(conn: AsyncConnection, ids: list[uuid.UUID]) -> list[str]:
    """Delete these reads, their stream events and the camera agents' records of them (which hold the agent's own
    plate text) in `conn`'s transaction; returns their objects' keys, to delete once it commits."""
    if not ids:
        return []
    rows = (
        await conn.execute(
            text("DELETE FROM ingest.reads WHERE id = ANY(:i) RETURNING image_key, crop_key"), {"i": ids}
        )
    ).all()
    for table in ("stream_events", "agent_reads", "agent_read_keys"):
        await conn.execute(text(f"DELETE FROM ingest.{table} WHERE read_id = ANY(:i)"), {"i": ids})
    return [key for row in rows for key in row if key]

"""Generated reads, photos and hits spread over many days, written straight to the tables and the store (the API
refuses reads older than the retention period, which is exactly what the purge needs to find)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.writer import READS, ensure_partition
from shared.storage import ObjectStore

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 200 + b"\xff\xd9"  # small: the purge never opens photos


@dataclass
class GenRead:
    read_id: uuid.UUID
    captured_at: datetime
    unit: str
    plate: str
    keys: list[str]


@dataclass
class Generated:
    reads: list[GenRead] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)  # objects with no row (a crashed upload)

    def by_id(self) -> dict[uuid.UUID, GenRead]:
        return {r.read_id: r for r in self.reads}


async def generate(
    engine: AsyncEngine,
    store: ObjectStore,
    *,
    now: datetime,
    days: int,
    per_day: int,
    units: tuple[str, ...],
    agency: str,
    photos: bool = True,
) -> Generated:
    gen = Generated()
    rows: list[dict[str, Any]] = []
    puts: list[tuple[str, bytes]] = []
    for d in range(1, days + 1):
        day: date = (now - timedelta(days=d)).date()
        for i in range(per_day):
            unit = units[i % len(units)]
            at = datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(minutes=37 * i)
            read_id = uuid.uuid4()
            plate = f"R{d:03d}{i:02d}"
            keys = []
            if photos:
                keys.append(f"reads/{day:%Y/%m/%d}/{read_id}.ab12.jpg")
                if i == 0:
                    keys.append(f"reads/{day:%Y/%m/%d}/{read_id}.ab12.crop.png")
            rows.append(
                {
                    "id": read_id,
                    "captured_at": at,
                    "received_at": at,
                    "agency": agency,
                    "unit": unit,
                    "camera": "front",
                    "client_read_id": f"gen-{read_id}",
                    "lat": 45.03,
                    "lon": -93.36,
                    "plate": plate,
                    "plate_source": "car",
                    "image_key": keys[0] if keys else None,
                    "crop_key": keys[1] if len(keys) > 1 else None,
                    "recognition_pending": False,
                    "match_pending": False,
                    "attempts": 0,
                    "hits": [],
                }
            )
            puts.extend((k, JPEG) for k in keys)
            gen.reads.append(GenRead(read_id, at, unit, plate, keys))
    async with engine.begin() as conn:
        for day in sorted({r.captured_at.date() for r in gen.reads}):
            await ensure_partition(conn, day)
    async with engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(READS.insert(), rows[start : start + 1000])
    for key, data in puts:
        await store.put(key, data, "image/jpeg")
    return gen


async def add_hit_events(engine: AsyncEngine, reads: list[GenRead]) -> None:
    async with engine.begin() as conn:
        for r in reads:
            await conn.execute(
                text(
                    "INSERT INTO ingest.stream_events (created_at, kind, unit, read_id, captured_at, dedupe_key, "
                    "payload) VALUES (:c, 'hit', :u, :r, :c, :k, '{}'::jsonb)"
                ),
                {"c": r.captured_at, "u": r.unit, "r": r.read_id, "k": f"gen-hit:{r.read_id}"},
            )


async def own_reads(engine: AsyncEngine, agency: str) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        return {r[0] for r in await conn.execute(text("SELECT id FROM ingest.reads WHERE agency = :a"), {"a": agency})}


async def own_events(engine: AsyncEngine, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT read_id FROM ingest.stream_events WHERE read_id = ANY(:ids)"), {"ids": list(ids)}
        )
        return {r[0] for r in rows}

"""Archived-read search over 1 M generated reads: access's `POST /v1/reads/search` over HTTP, inside a grant,
calling ingest's read archive over HTTP (both under uvicorn, one worker each), as an investigator would use it.

The reads are COPYed straight into ingest's day partitions (30 days, ~33 k a day; plates of ~200 k distinct
vehicles, MN-style `ABC1234`, each seen about five times, around the Twin Cities). Query shapes, each in a closed
loop: one exact plate over the 30 days; the same misread-tolerant; a two-letter prefix wildcard (first page of
100); the prefix inside a 2 km circle.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import closed_loop, database, serve
from services.access import identity
from services.access.security import Passwords
from services.ingest.writer import ensure_partition
from shared import plates
from shared.db import create_sessionmaker
from shared.settings import Settings

READS = 1_000_000
DAYS = 30
VEHICLES = 200_000
PASSWORD = "bench password 2026"
CHEAP = {"password_time_cost": 1, "password_memory_kib": 8, "password_parallelism": 1}
CENTER = (44.98, -93.27)
COLUMNS = [
    "id", "captured_at", "received_at", "agency", "unit", "camera", "client_read_id", "lat", "lon", "plate",
    "confusion_key", "state", "plate_source", "image_key", "recognition_pending", "match_pending", "attempts", "hits",
]  # fmt: skip


def _plate(rnd: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(rnd.choices(letters, k=3)) + "".join(rnd.choices("0123456789", k=3))


def _rows(now: datetime, seed: int = 7) -> tuple[list[tuple[Any, ...]], list[str]]:
    rnd = random.Random(seed)
    vehicles = [_plate(rnd) for _ in range(VEHICLES)]
    rows = []
    start = now - timedelta(days=DAYS)
    span = DAYS * 86400 - 3600
    for i in range(READS):
        plate = vehicles[rnd.randrange(VEHICLES)]
        at = start + timedelta(seconds=rnd.random() * span)
        lat, lon = CENTER[0] + rnd.uniform(-0.3, 0.3), CENTER[1] + rnd.uniform(-0.4, 0.4)
        rid = uuid.UUID(int=rnd.getrandbits(128))
        rows.append(
            (rid, at, at, "MN0271200", f"car-{i % 40}", "front", f"b{i}", lat, lon, plate, plates.confusion_key(plate),
             "MN", "car", f"reads/{at:%Y/%m/%d}/{rid}.jpg", False, False, 0, "[]")
        )  # fmt: skip
    return rows, vehicles


async def _load(url: str, now: datetime) -> tuple[list[str], float]:
    rows, vehicles = await asyncio.to_thread(_rows, now)
    engine = create_async_engine(url)
    began = time.perf_counter()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM ingest.reads WHERE client_read_id LIKE 'b%' AND unit LIKE 'car-%'"))
            first = (now - timedelta(days=DAYS)).date()
            for d in range((now.date() - first).days + 1):
                await ensure_partition(conn, first + timedelta(days=d))
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.copy_records_to_table("reads", schema_name="ingest", columns=COLUMNS, records=rows)  # type: ignore[union-attr]
            await raw.execute("ANALYZE ingest.reads")  # type: ignore[union-attr]
    finally:
        await engine.dispose()
    return vehicles, time.perf_counter() - began


async def _people(url: str, settings: Settings) -> tuple[str, str]:
    engine = create_async_engine(url)
    names = []
    try:
        async with create_sessionmaker(engine)() as session:
            for role in ("officer", "supervisor"):
                user = await identity.create_user(
                    session, Passwords(settings), username=f"bench-{role}-{time.time_ns()}", password=PASSWORD,
                    full_name=f"Bench {role}", agency="MN0271200", roles=[role], badge=None,
                )  # fmt: skip
                await identity.add_training(
                    session, user, course="ALPR", completed_on=date.today() - timedelta(days=1),
                    expires_on=date.today() + timedelta(days=300), recorded_by="bench",
                )  # fmt: skip
                names.append(user.username)
            await session.commit()
    finally:
        await engine.dispose()
    return names[0], names[1]


def _token(base: str, username: str) -> dict[str, str]:
    resp = httpx.post(
        f"{base}/v1/token", data={"grant_type": "password", "username": username, "password": PASSWORD}, timeout=30
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def run(duration_s: float = 8.0, concurrency: int = 4) -> dict[str, Any]:
    now = datetime.now(UTC)
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), database_url=url, **CHEAP)
        vehicles, load_s = asyncio.run(_load(url, now))
        officer, supervisor = asyncio.run(_people(url, settings))
        env = {"ALPR_DATABASE_URL": url, "ALPR_DATA_DIR": data_dir}
        with serve(
            "ingest", {**env, "ALPR_INGEST_CALL_RECOGNITION": "false", "ALPR_INGEST_CALL_HOTLIST": "false"}
        ) as ingest:
            with serve("access", {**env, "ALPR_INGEST_URL": ingest}) as base:
                officer_auth, sup_auth = _token(base, officer), _token(base, supervisor)
                rnd = random.Random(3)
                exact = rnd.sample(vehicles, 20)
                prefixes = sorted({p[:2] + "*" for p in rnd.sample(vehicles, 5)})
                start, end = (now - timedelta(days=DAYS + 1)).isoformat(), now.isoformat()
                request = {
                    "case_number": "BENCH-1", "reason": "benchmark", "suspicion_basis": "benchmark",
                    "plates": exact + prefixes, "misread_tolerant": True, "start": start, "end": end,
                    "warrant_number": "27-CR-26-0001",
                }  # fmt: skip
                filed = httpx.post(
                    f"{base}/v1/requests", data={"request": json.dumps(request)}, headers=officer_auth, timeout=30
                )
                filed.raise_for_status()
                decided = httpx.post(
                    f"{base}/v1/requests/{filed.json()['id']}/decision",
                    json={"version": 1, "decision": "approve", "reason": "benchmark"},
                    headers=sup_auth,
                    timeout=30,
                )
                decided.raise_for_status()
                grant = decided.json()["grant"]["id"]
                window = {"grant_id": grant, "start": start, "end": end}
                area = {"lat": CENTER[0], "lon": CENTER[1], "radius_m": 2000}
                shapes = {
                    "exact_plate_30_days": lambda i: {"plates": [exact[i % 20]]},
                    "exact_misread_tolerant": lambda i: {"plates": [exact[i % 20]], "misread_tolerant": True},
                    "prefix_wildcard_page_100": lambda i: {"plates": [prefixes[i % len(prefixes)]], "limit": 100},
                    "prefix_in_2km_circle": lambda i: {"plates": [prefixes[i % len(prefixes)]], "area": area},
                }
                results: dict[str, Any] = {}
                for name, shape in shapes.items():
                    counter = iter(range(10**9))
                    found: list[int] = []

                    async def one(
                        client: httpx.AsyncClient, shape: Any = shape, counter: Any = counter, found: Any = found
                    ) -> Any:
                        resp = await client.post(
                            "/v1/reads/search", json={**window, **shape(next(counter))}, headers=officer_auth
                        )
                        if resp.status_code == 200:
                            found.append(resp.json()["count"])
                        return resp

                    loop = asyncio.run(closed_loop(one, base_url=base, concurrency=concurrency, duration_s=duration_s))
                    results[name] = {**loop, "mean_reads_returned": round(sum(found) / max(len(found), 1), 1)}
    return {
        "reads": READS,
        "days": DAYS,
        "load_copy_s": round(load_s, 1),
        "workers": {"access": 1, "ingest": 1},
        **results,
    }

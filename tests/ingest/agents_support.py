"""Helpers of the camera-agent tests: the captured bodies (shifted to now), agents registered through the API."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from tests.ingest.conftest import AGENCY, image_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "agents"
_EPOCH = re.compile(rb"\b1795\d{9}\b")
# One shift for every fixture, fixed at import, so a group and its frames keep their shared keys.
_SHIFT_MS = (
    int(time.time() * 1000)
    - 60_000
    - max(int(m.group()) for f in FIXTURES.glob("*.json") for m in _EPOCH.finditer(f.read_bytes()))
)


def body(name: str, *, shift_ms: int | None = None) -> bytes:
    """A fixture body exactly as the agent sent it (duplicate keys and all), its epoch times moved near now."""
    raw = (FIXTURES / name).read_bytes()
    delta = _SHIFT_MS if shift_ms is None else shift_ms
    return _EPOCH.sub(lambda m: str(int(m.group()) + delta).encode(), raw)


def now_ms() -> int:
    return int(time.time() * 1000)


def results_body(plate: str, at_ms: int, *, uuid: str | None = None, camera: int = 1, **extra: Any) -> bytes:
    frame = uuid or f"site-cam{camera}-{at_ms}"
    doc = {
        "version": 2,
        "data_type": "alpr_results",
        "epoch_time": at_ms,
        "img_width": 1280,
        "img_height": 960,
        "results": [
            {
                "plate": plate,
                "confidence": 90.5,
                "matches_template": 1,
                "plate_index": 0,
                "region": "mn",
                "coordinates": [{"x": 1, "y": 2}, {"x": 3, "y": 2}, {"x": 3, "y": 4}, {"x": 1, "y": 4}],
                "candidates": [{"plate": plate, "confidence": 90.5, "matches_template": 1}],
            }
        ],
        "uuid": frame,
        "camera_id": camera,
        "site_id": "",
        **extra,
    }
    # alprd repeats img_width/img_height: keep that quirk in every body the tests build.
    return json.dumps(doc)[:-1].encode() + b', "img_width": 1280, "img_height": 960}'


def group_body(
    plate: str, uuids: list[str], best_uuid: str, best_ms: int, *, preview: bool, crop: bool = False
) -> bytes:
    best: dict[str, Any] = {"plate": plate, "confidence": 93.0, "plate_index": 0, "region": "us-mn"}
    doc: dict[str, Any] = {
        "data_type": "alpr_group",
        "version": 2,
        "epoch_start": best_ms - 500,
        "epoch_end": best_ms + 500,
        "camera_id": 7,
        "gps_latitude": 45.01,
        "gps_longitude": -93.2,
        "uuids": uuids,
        "plate_indexes": [0] * len(uuids),
        "best_plate": best,
        "best_uuid": best_uuid,
        "best_uuid_epoch_ms": best_ms,
        "best_confidence": 93.0,
        "is_preview": 1 if preview else 0,
        "travel_direction": 90.0,
        "vehicle": {"color": [{"name": "red", "confidence": 80}], "make": [{"name": "ford", "confidence": 70}]},
    }
    if crop:
        best["plate_crop_jpeg"] = base64.b64encode(image_bytes(size=(120, 40))).decode()
        doc["vehicle_crop_jpeg"] = base64.b64encode(image_bytes(size=(320, 240))).decode()
    return json.dumps(doc).encode()


async def register(client: httpx.AsyncClient, admin_token: str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"kind": "fixed", "lat": 45.03, "lon": -93.36, "placed_on": "2026-01-15", **fields}
    resp = await client.post("/v1/agents", json=payload, headers={"Authorization": f"Bearer {admin_token}"})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def post(client: httpx.AsyncClient, token: str, raw: bytes) -> httpx.Response:
    # As alprd does: only Accept, Content-Type and its odd `charsets` header, the token in the URL.
    headers = {"Accept": "application/json", "Content-Type": "application/json", "charsets": "utf-8"}
    return await client.post(f"/v1/agents/openalpr/{token}", content=raw, headers=headers)


async def rows(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def drain(app: Any) -> None:
    """Import everything spooled so far (the tests run the importer themselves rather than wait for it)."""
    importer = app.state.agents.importer
    while await importer.run_once():
        pass


__all__ = ["AGENCY"]

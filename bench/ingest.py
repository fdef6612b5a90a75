"""Sustained reads/s and latency of `POST /v1/reads`: metadata-only reads and reads with a 100 KB photo.

Ingest runs under uvicorn (2 workers: this machine has 2 cores) on PostgreSQL and a real S3 server (`weed mini`),
with recognition and hotlist not configured: the figures exclude OCR and matching. Reads are acknowledged after
their group commit. The load generator shares the machine's 2 cores with the service, PostgreSQL and weed.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import closed_loop, database, serve
from shared.keys import ensure_signing_key, sign_token

PHOTO_BYTES = 100 * 1024


def photo(target: int = PHOTO_BYTES) -> bytes:
    """A JPEG of about `target` bytes (noise compresses badly, so the size is steerable by area)."""
    from PIL import Image

    side = 200
    while True:
        buf = io.BytesIO()
        Image.effect_noise((side, side), 64).convert("RGB").save(buf, format="JPEG", quality=85)
        if buf.tell() >= target:
            return buf.getvalue()
        side += 20


def _token(keys_dir: Path, badge: str) -> str:
    key = ensure_signing_key(keys_dir)
    return sign_token(
        key,
        subject=f"bench-officer-{badge}",
        audience="alpr",
        issuer="alpr-access",
        ttl_s=3600,
        claims={"roles": ["officer"], "badge": badge, "agency": "MN0270100", "trained_until": int(time.time()) + 86400},
    )


def _meta(unit: str) -> dict[str, Any]:
    return {
        "client_read_id": uuid.uuid4().hex,
        "unit": unit,
        "camera": "front",
        "captured_at": datetime.now(UTC).isoformat(),
        "lat": 45.0 + random.random() / 10,
        "lon": -93.3 + random.random() / 10,
        "plate": f"B{random.randint(0, 999999):06d}",
        "plate_confidence": 0.9,
        "state": "MN",
    }


def run(duration_s: float = 10.0, workers: int = 2) -> dict[str, Any]:
    from tests.support.s3 import ACCESS_KEY, BUCKET, SECRET_KEY, WeedS3

    image = photo()
    with database() as url, tempfile.TemporaryDirectory() as tmp:
        keys_dir = Path(tmp) / "keys"
        ensure_signing_key(keys_dir, "ES256")
        weed = WeedS3(Path(tmp) / "weed")
        weed.start()
        try:
            env = {
                "ALPR_DATABASE_URL": url,
                "ALPR_DATA_DIR": str(Path(tmp) / "data"),
                "ALPR_JWT_KEYS_DIR": str(keys_dir),
                "ALPR_S3_ENDPOINT": weed.endpoint,
                "ALPR_S3_ACCESS_KEY": ACCESS_KEY,
                "ALPR_S3_SECRET_KEY": SECRET_KEY,
                "ALPR_S3_BUCKET": BUCKET,
                "ALPR_INGEST_CALL_RECOGNITION": "false",
                "ALPR_INGEST_CALL_HOTLIST": "false",
                "ALPR_DB_POOL_SIZE": "8",
            }
            with serve("ingest", env, workers=workers) as base:
                results = {
                    # The machine's ceiling for this harness now: a trivial endpoint on the same server. When
                    # other work shares the 2 cores, read figures are bounded by it; compare them as ratios.
                    "healthz_baseline": asyncio.run(
                        closed_loop(lambda c: c.get("/healthz"), base_url=base, concurrency=48, duration_s=3.0)
                    ),
                    "metadata_only": asyncio.run(_measure(base, keys_dir, None, duration_s, concurrency=48)),
                    "photo_100kb": asyncio.run(_measure(base, keys_dir, image, duration_s, concurrency=24)),
                }
        finally:
            weed.stop()
    return {
        "service": "ingest",
        "workers": workers,
        "store": "s3 (weed mini)",
        "recognition_and_hotlist": "not configured (figures exclude OCR and matching)",
        "photo_bytes": len(image),
        **results,
        "targets": {"metadata_only_per_s": 1000, "photo_per_s": 300, "p95_ms": 50},
    }


async def _measure(
    base: str, keys_dir: Path, image: bytes | None, duration_s: float, concurrency: int
) -> dict[str, Any]:
    badge = str(random.randint(10000, 99999))
    token = _token(keys_dir, badge)
    headers = {"Authorization": f"Bearer {token}"}
    unit = f"bench-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        resp = await client.post("/v1/shifts", json={"badge": badge, "unit": unit, "cameras": []}, headers=headers)
        resp.raise_for_status()

    async def one(client: httpx.AsyncClient) -> httpx.Response:
        if image is None:
            return await client.post("/v1/reads", json=_meta(unit), headers=headers)
        files = {
            "metadata": (None, json.dumps(_meta(unit)), "application/json"),
            "photo": ("p.jpg", image, "image/jpeg"),
        }
        return await client.post("/v1/reads", files=files, headers=headers)

    # A short warm-up (connections, partitions, caches), then the measured run.
    await closed_loop(one, base_url=base, concurrency=concurrency, duration_s=1.0)
    return await closed_loop(one, base_url=base, concurrency=concurrency, duration_s=duration_s)

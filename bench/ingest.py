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
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import closed_loop, database, percentiles, serve
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
            # The service's own capacity first, in one process and without HTTP: ASGI calls straight into the app,
            # so neither the HTTP load generator nor uvicorn shares the cores with it. Server CPU per read is the
            # figure that transfers to a quiet machine.
            in_process = {
                "metadata_only": asyncio.run(_in_process(env, keys_dir, None, reads=3000, concurrency=48)),
                "photo_100kb": asyncio.run(_in_process(env, keys_dir, image, reads=1000, concurrency=24)),
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
        "over_http": results,
        "in_process_no_http": in_process,
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


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _asgi_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> int:
    """One request straight into the ASGI app (no sockets, no HTTP client)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _multipart(meta: dict[str, Any], image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{json.dumps(meta)}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def _in_process(
    env: dict[str, str], keys_dir: Path, image: bytes | None, *, reads: int, concurrency: int
) -> dict[str, Any]:
    from services.ingest.main import create_app
    from shared.settings import Settings

    values = {k.removeprefix("ALPR_").lower(): v for k, v in env.items() if k.startswith("ALPR_")}
    app = create_app(Settings(**values, log_level="WARNING"), run_worker=False)
    badge = str(random.randint(10000, 99999))
    auth = {"Authorization": f"Bearer {_token(keys_dir, badge)}"}
    unit = f"bench-{uuid.uuid4().hex[:8]}"
    async with app.router.lifespan_context(app):
        shift = json.dumps({"badge": badge, "unit": unit, "cameras": []}).encode()
        if await _asgi_post(app, "/v1/shifts", {**auth, "Content-Type": "application/json"}, shift) != 201:
            raise RuntimeError("could not start the bench shift")
        bodies = []
        for _ in range(reads):
            if image is None:
                bodies.append((json.dumps(_meta(unit)).encode(), "application/json"))
            else:
                bodies.append(_multipart(_meta(unit), image))
        pending = iter(bodies)
        latencies: list[float] = []
        errors = 0

        async def worker() -> None:
            nonlocal errors
            for body, ctype in pending:
                start = time.perf_counter()
                code = await _asgi_post(app, "/v1/reads", {**auth, "Content-Type": ctype}, body)
                latencies.append((time.perf_counter() - start) * 1000)
                errors += code >= 400

        cpu0, began = _cpu_s(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - began, _cpu_s() - cpu0
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_s": round(len(latencies) / elapsed, 1),
        "concurrency": concurrency,
        "cpu_ms_per_read": round(cpu / len(latencies) * 1000, 2),
        **percentiles(latencies),
    }

"""Floods no service may buffer or decode: peak resident memory of ingest and recognition while each is refused.

- a 300 MB chunked body to `/v1/agents/openalpr/<wrong token>` (refused on the token, before the body is read);
- the same to a registered agent's token (refused at the body limit, while it streams);
- a PNG of 20000 x 20000 pixels (a few hundred KB compressed) to ingest's `/v1/reads` and recognition's
  `/v1/recognize` (refused on its header's dimensions, before anything decodes it).

Each service runs under uvicorn (one process), its resident set sampled every 20 ms from /proc; the figure is the
peak during the flood minus the resident set just before it. Target: +50 MB at most for each.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.harness import database, free_port
from services.ingest.agents.registry import hash_token, new_token
from shared.keys import ensure_signing_key, sign_token

TARGET_MB = 50
FLOOD_BYTES = 300 * 1024 * 1024
SIDE = 20_000


def huge_png(side: int = SIDE) -> bytes:
    """A valid 8-bit greyscale PNG of side x side black pixels: tiny compressed, side^2 bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _rss_mb(pid: int) -> float:
    """The process's resident set and its children's (recognition's OCR workers)."""
    total = 0.0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                total = int(line.split()[1]) / 1024
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += _rss_mb(int(child))
    return total


class _Peak:
    """The largest resident set of a process while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.before, self.peak = pid, _rss_mb(pid), 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # what the refusal left behind counts too
        self._stop.set()
        self._thread.join()

    def report(self, status: int, seconds: float) -> dict[str, Any]:
        growth = round(self.peak - self.before, 1)
        return {"status": status, "seconds": round(seconds, 2), "rss_before_mb": round(self.before, 1),
                "rss_peak_mb": round(self.peak, 1), "growth_mb": growth, "ok": growth <= TARGET_MB}  # fmt: skip


@contextlib.contextmanager
def _serve(service: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.main:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "ALPR_LOG_LEVEL": "ERROR", **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{service} did not become ready")
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(15)


def _chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    block = b"[" + b" " * (size - 1)
    for _ in range(total // size):
        yield block


def _flood(base: str, pid: int, path: str, **kwargs: Any) -> dict[str, Any]:
    with _Peak(pid) as peak:
        started = time.perf_counter()
        try:
            status = httpx.post(f"{base}{path}", timeout=120, **kwargs).status_code
        except httpx.HTTPError:
            status = 0  # the server closed the connection after refusing: what a client sees of a refusal mid-body
        seconds = time.perf_counter() - started
    return peak.report(status, seconds)


def run() -> dict[str, Any]:
    png = huge_png()
    out: dict[str, Any] = {"png_bytes": len(png), "png_pixels": f"{SIDE}x{SIDE}", "target_growth_mb": TARGET_MB}
    with database() as url, tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys"
        key = ensure_signing_key(keys, "ES256")
        claims = {"roles": ["officer"], "agency": "MN0271200", "badge": "B1", "trained_until": int(time.time()) + 3600}
        officer = sign_token(key, subject="bench", audience="alpr", issuer="alpr-access", ttl_s=3600, claims=claims)
        env = {
            "ALPR_DATABASE_URL": url,
            "ALPR_DATA_DIR": str(Path(tmp) / "data"),
            "ALPR_JWT_KEYS_DIR": str(keys),
            "ALPR_INGEST_CALL_RECOGNITION": "false",
            "ALPR_INGEST_CALL_HOTLIST": "false",
            "ALPR_RECOGNITION_WORKERS": "1",
        }
        token = new_token()
        _register(url, token)
        auth = {"Authorization": f"Bearer {officer}"}
        with _serve("ingest", env) as (base, pid):
            out["ingest_wrong_token_300mb"] = _flood(base, pid, "/v1/agents/openalpr/" + new_token(),
                                                     content=_chunks(FLOOD_BYTES))  # fmt: skip
            out["ingest_agent_300mb"] = _flood(base, pid, f"/v1/agents/openalpr/{token}", content=_chunks(FLOOD_BYTES))
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            meta = json.dumps({"client_read_id": "flood-1", "unit": "car-1", "camera": "front", "lat": 45.0,
                               "lon": -93.0, "captured_at": now})  # fmt: skip
            files = {"metadata": (None, meta, "application/json"), "photo": ("big.png", png, "image/png")}
            out["ingest_png_20000px"] = _flood(base, pid, "/v1/reads", files=files, headers=auth)
        with _serve("recognition", env) as (base, pid):
            files = {"image": ("big.png", png, "image/png")}
            out["recognition_png_20000px"] = _flood(base, pid, "/v1/recognize", files=files, headers=auth)
    out["ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
    return out


def _register(url: str, token: str) -> None:
    import asyncio

    import asyncpg

    async def insert() -> None:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            await conn.execute(
                "INSERT INTO ingest.agents (id, name, agency, kind, lat, lon, placed_on, token_sha256, "
                "token_rotated_at, created_at) VALUES (gen_random_uuid(), 'flood', 'MN0271200', 'fixed', 45.0, -93.0, "
                "current_date, $1, now(), now())",
                hash_token(token),
            )
        finally:
            await conn.close()

    asyncio.run(insert())

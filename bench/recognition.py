"""Per-photo latency of `POST /v1/recognize` with one OCR worker, on plates drawn with OpenCV (as the tests do).

Photos are sent one at a time, so the figure is the latency of one read, not throughput under load.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.harness import database, percentiles, serve
from shared.keys import ensure_signing_key, sign_token
from tests.recognition.render import jpeg, plate_image

PLATES = ["ABC1234", "KXR482", "7HTW519", "PZM337", "JFJ4764", "HRT482", "MX5521", "GOPHER", "4EEU387", "CYZ5139"]


def _photos() -> list[tuple[str, bytes]]:
    photos = []
    for i, text in enumerate(PLATES):
        size = (1280, 720) if i % 2 else (960, 640)
        image = plate_image(text, size=size, plate_width=120 + 20 * i, angle=(i % 3 - 1) * 5.0, seed=i)
        photos.append((text, jpeg(image)))
    return photos


def run(rounds: int = 3) -> dict[str, Any]:
    photos = _photos()
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        keys = os.path.join(data_dir, "keys")
        key = ensure_signing_key(Path(keys), "ES256")
        token = sign_token(key, subject="bench", audience="alpr", issuer="alpr-access", ttl_s=3600,
                           claims={"roles": ["service"]})  # fmt: skip
        env = {
            "ALPR_DATABASE_URL": url,
            "ALPR_DATA_DIR": data_dir,
            "ALPR_JWT_KEYS_DIR": keys,
            "ALPR_RECOGNITION_WORKERS": "1",
        }
        client_ms: list[float] = []
        server_ms: list[float] = []
        correct = 0
        with serve("recognition", env) as base, httpx.Client(base_url=base, timeout=60) as client:
            headers = {"Authorization": f"Bearer {token}"}
            client.post("/v1/recognize", files={"image": ("w.jpg", photos[0][1])}, headers=headers)  # warm-up
            for _ in range(rounds):
                for text, data in photos:
                    resp = client.post("/v1/recognize", files={"image": ("p.jpg", data)}, headers=headers)
                    resp.raise_for_status()
                    body = resp.json()
                    client_ms.append(resp.elapsed.total_seconds() * 1000)
                    server_ms.append(body["timings_ms"]["total"])
                    correct += bool(body["plates"]) and body["plates"][0]["plate"] == text
    server = percentiles(server_ms)
    return {
        "workers": 1,
        "photos": len(client_ms),
        "exact": round(correct / len(client_ms), 3),
        **percentiles(client_ms),
        "server_p50_ms": server["p50_ms"],
        "server_p95_ms": server["p95_ms"],
    }

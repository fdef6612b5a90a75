"""`POST /v1/recognize` on plates drawn with OpenCV (as the tests do): one read at a time, then throughput.

- `one_at_a_time`: one OCR worker, photos sent one after another: the latency of one read.
- `workers_1`, `workers_2`: the service with 1 and 2 OCR workers, kept busy by twice as many clients: photos/s,
  and each request's time split into OCR (the server's own `timings_ms.total`) and the rest (waiting in the
  service's queue for a worker, plus HTTP), as p50/p95. This machine has 2 cores and other work on it: the load
  average is reported beside the figures (CPU per photo is `alpr eval-ocr`'s).
- `second_reader`: photos/s and server CPU per photo with and without the second, plate-specific reader (issue 27).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
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


# (OCR workers, ONNX Runtime threads per run, spin-waiting): the default first, then what it was chosen against.
SETTINGS = [(2, 1, False), (2, 2, True), (2, 2, False), (1, 2, False), (1, 1, False)]


def cpu_per_photo(
    rounds: int = 2, concurrency: int = 4, settings: list[tuple[int, int, bool]] | None = None, second: bool = True
) -> dict[str, Any]:
    """Server CPU per photo (user + system of the service process, from /proc) for each thread setting, with
    `concurrency` photos in flight, as ingest's worker sends them. CPU, not wall time: it does not depend on what
    else shares the machine's cores, spin-waiting excepted (which is what it measures)."""
    import asyncio

    import psutil

    photos = _photos()
    out: dict[str, Any] = {}
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        keys = os.path.join(data_dir, "keys")
        key = ensure_signing_key(Path(keys), "ES256")
        token = sign_token(key, subject="bench", audience="alpr", issuer="alpr-access", ttl_s=3600,
                           claims={"roles": ["service"]})  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        for workers, threads, spin in settings or SETTINGS:
            env = {
                "ALPR_DATABASE_URL": url,
                "ALPR_DATA_DIR": data_dir,
                "ALPR_JWT_KEYS_DIR": keys,
                "ALPR_RECOGNITION_WORKERS": str(workers),
                "ALPR_RECOGNITION_INTRA_OP_THREADS": str(threads),
                "ALPR_RECOGNITION_SPIN": str(spin).lower(),
                "ALPR_RECOGNITION_SECOND_READER": str(second).lower(),
            }
            before_children = {p.pid for p in psutil.Process().children()}
            with serve("recognition", env) as base:
                proc = next(p for p in psutil.Process().children() if p.pid not in before_children)
                with httpx.Client(base_url=base, timeout=60) as client:
                    client.post("/v1/recognize", files={"image": ("w.jpg", photos[0][1])}, headers=headers)

                async def load() -> tuple[int, float]:
                    gate = asyncio.Semaphore(concurrency)
                    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

                        async def one(data: bytes) -> int:
                            async with gate:
                                r = await client.post(
                                    "/v1/recognize", files={"image": ("p.jpg", data)}, headers=headers
                                )
                                return int(r.status_code == 200)

                        began = time.perf_counter()
                        ok = await asyncio.gather(*(one(d) for _ in range(rounds) for _, d in photos))
                        return sum(ok), time.perf_counter() - began

                load0 = os.getloadavg()[0]
                t0 = proc.cpu_times()
                ok, wall = asyncio.run(load())
                t1 = proc.cpu_times()
                cpu = (t1.user + t1.system) - (t0.user + t0.system)
            out[f"workers={workers},threads={threads},spin={int(spin)}"] = {
                "photos": ok,
                "cpu_ms_per_photo": round(cpu / max(ok, 1) * 1000, 1),
                "wall_ms_per_photo": round(wall / max(ok, 1) * 1000, 1),
                "photos_per_s": round(ok / max(wall, 1e-9), 2),
                "load_average_1m": round(load0, 2),
            }
    return {"concurrency": concurrency, "settings": out, "target_cpu_ms_per_photo": 150}


def _env(url: str, data_dir: str, workers: int) -> tuple[dict[str, str], str]:
    keys = os.path.join(data_dir, "keys")
    key = ensure_signing_key(Path(keys), "ES256")
    token = sign_token(key, subject="bench", audience="alpr", issuer="alpr-access", ttl_s=3600,
                       claims={"roles": ["service"]})  # fmt: skip
    env = {
        "ALPR_DATABASE_URL": url,
        "ALPR_DATA_DIR": data_dir,
        "ALPR_JWT_KEYS_DIR": keys,
        "ALPR_RECOGNITION_WORKERS": str(workers),
    }
    return env, token


def _one_at_a_time(base: str, token: str, photos: list[tuple[str, bytes]], rounds: int) -> dict[str, Any]:
    client_ms: list[float] = []
    server_ms: list[float] = []
    correct = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        headers = {"Authorization": f"Bearer {token}"}
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


def _throughput(base: str, token: str, photos: list[tuple[str, bytes]], workers: int, rounds: int) -> dict[str, Any]:
    """`2 * workers` clients send the photos `rounds` times over; the service keeps them all in its queue."""
    jobs = [data for _ in range(rounds) for _, data in photos]
    lock = threading.Lock()
    ocr_ms: list[float] = []
    rest_ms: list[float] = []
    refused = 0

    def client_loop() -> None:
        nonlocal refused
        with httpx.Client(base_url=base, timeout=120) as client:
            headers = {"Authorization": f"Bearer {token}"}
            while True:
                with lock:
                    if not jobs:
                        return
                    data = jobs.pop()
                start = time.perf_counter()
                resp = client.post("/v1/recognize", files={"image": ("p.jpg", data)}, headers=headers)
                total = (time.perf_counter() - start) * 1000
                with lock:
                    if resp.status_code != 200:
                        refused += 1
                        continue
                    ocr = float(resp.json()["timings_ms"]["total"])
                    ocr_ms.append(ocr)
                    rest_ms.append(max(0.0, total - ocr))

    count = len(jobs)
    wall0, load0 = time.perf_counter(), os.getloadavg()[0]
    threads = [threading.Thread(target=client_loop) for _ in range(2 * workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    ocr, rest = percentiles(ocr_ms), percentiles(rest_ms)
    return {
        "workers": workers,
        "clients": 2 * workers,
        "photos": count,
        "refused": refused,
        "photos_per_s": round(len(ocr_ms) / wall, 2),
        "ocr_p50_ms": ocr["p50_ms"],
        "ocr_p95_ms": ocr["p95_ms"],
        "queue_and_http_p50_ms": rest["p50_ms"],
        "queue_and_http_p95_ms": rest["p95_ms"],
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def run(rounds: int = 3) -> dict[str, Any]:
    photos = _photos()
    out: dict[str, Any] = {"cpus": os.cpu_count()}
    with database() as url, tempfile.TemporaryDirectory() as data_dir:
        for workers in (1, 2):
            env, token = _env(url, data_dir, workers)
            with serve("recognition", env) as base:
                with httpx.Client(base_url=base, timeout=60) as client:  # warm-up
                    client.post("/v1/recognize", files={"image": ("w.jpg", photos[0][1])},
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                if workers == 1:
                    out.update(_one_at_a_time(base, token, photos, rounds))
                out[f"workers_{workers}"] = _throughput(base, token, photos, workers, rounds)
    out["cpu_per_photo"] = cpu_per_photo()
    # The second reader's cost (issue 27): the default setting with and without it, one after the other.
    out["second_reader"] = {
        name: cpu_per_photo(rounds=3, settings=[SETTINGS[0]], second=second)["settings"]
        for name, second in (("with", True), ("without", False))
    }
    return out

"""Accuracy and latency of the pipeline over a folder of labelled photos (`NAME.jpg` + `NAME.txt` holding
`NAME.jpg x y w h PLATE`), as `alpr eval-ocr` reports them."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.recognition.engine import PLATE_HEAD, OcrEngine
from services.recognition.pipeline import Options, recognize_bytes
from shared.plates import normalize

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
    return row[-1]


def labelled_photos(folder: Path) -> list[tuple[Path, str]]:
    out = []
    for label in sorted(folder.glob("*.txt")):
        parts = label.read_text().split()
        if len(parts) < 6:
            continue
        for suffix in IMAGE_SUFFIXES:
            photo = label.with_suffix(suffix)
            if photo.exists():
                out.append((photo, normalize(parts[5])))
                break
    return out


@dataclass
class Evaluation:
    images: int = 0
    exact: int = 0
    within_one: int = 0
    no_read: int = 0
    skipped: int = 0  # photos left out: the plate head was trained on them
    latencies_ms: list[float] = field(default_factory=list)
    misreads: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = max(self.images, 1)
        ordered = sorted(self.latencies_ms) or [0.0]
        p95 = statistics.quantiles(ordered, n=20, method="inclusive")[18] if len(ordered) > 1 else ordered[0]
        return {
            "images": self.images,
            "skipped_trained": self.skipped,
            "exact": round(self.exact / n, 4),
            "within_one": round(self.within_one / n, 4),
            "no_read": round(self.no_read / n, 4),
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(p95, 1),
            "misreads": self.misreads,
        }


def trained_on() -> set[str]:
    """Photo names the shipped plate head was trained on (its model card): not fit to measure it on."""
    card = PLATE_HEAD.with_suffix(".json")
    return set(json.loads(card.read_text()).get("trained_on", [])) if card.exists() else set()


def evaluate(engine: OcrEngine, folder: Path, options: Options = Options(), skip: set[str] = frozenset()) -> Evaluation:
    """Read every labelled photo in `folder` but those named in `skip`."""
    result = Evaluation()
    for photo, expected in labelled_photos(folder):
        if photo.name in skip:
            result.skipped += 1
            continue
        data = photo.read_bytes()
        start = time.perf_counter()
        reading = recognize_bytes(engine, data, options)
        result.latencies_ms.append((time.perf_counter() - start) * 1000)
        read = reading.plates[0].plate if reading.plates else None
        result.images += 1
        if read is None:
            result.no_read += 1
        elif read == expected:
            result.exact += 1
        if read is not None and edit_distance(read, expected) <= 1:
            result.within_one += 1
        if read != expected:
            result.misreads.append({"file": photo.name, "expected": expected, "read": read})
    return result

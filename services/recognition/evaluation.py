"""Accuracy, hot-list hit recall and cost of the pipeline over a folder of labelled photos (`NAME.jpg` + `NAME.txt`
holding `NAME.jpg x y w h PLATE`), as `alpr eval-ocr` reports them.

Folds: the photos sorted by name fall into fold A (1st, 3rd, ...) and fold B (2nd, 4th, ...), the split the plate
head is trained on too. Every setting chosen by measuring (`data/tuned.json`, written by `python -m
services.recognition.tuning`) is chosen on one fold and applied to the other: fold A is read with what was tuned on
fold B and the other way round; those two together are the cross-fold figure, the headline. The figure on all
photos with what was tuned on all of them is reported beside it only: it has seen its answers.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.recognition.engine import PLATE_HEAD, OcrEngine
from services.recognition.hitrate import hot_list_keys, outcome
from services.recognition.pipeline import Options, recognize_bytes, tuned_settings, with_settings
from services.recognition.second_opinion import use_reader
from shared.plates import normalize

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FOLDS = ("A", "B")


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


def fold_of(index: int) -> str:
    """The fold of the photo at `index` in name order."""
    return FOLDS[index % 2]


def other(fold: str) -> str:
    return FOLDS[1 - FOLDS.index(fold)]


@dataclass
class PhotoResult:
    file: str
    fold: str
    expected: str
    read: str | None
    alternatives: list[str]
    wall_ms: float
    cpu_ms: float
    shares: list[float] = field(default_factory=list)  # each alternative's score (tuning picks by it)
    first: str | None = None  # each reader's own best reading (issue 27), and whether the two agreed
    second: str | None = None
    agreement: str | None = None


def cpu_seconds() -> float:
    """CPU time of this process, every thread (ONNX Runtime's pool included), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_photo(engine: OcrEngine, photo: Path, fold: str, expected: str, options: Options) -> PhotoResult:
    data = photo.read_bytes()
    c0, w0 = cpu_seconds(), time.perf_counter()
    reading = recognize_bytes(engine, data, options)
    wall, cpu = time.perf_counter() - w0, cpu_seconds() - c0
    best = reading.plates[0] if reading.plates else None
    alts = [a for a, _ in best.alternatives] if best else []
    result = PhotoResult(photo.name, fold, expected, best.plate if best else None, alts, wall * 1000, cpu * 1000)
    if best is not None:
        result.first = best.readings.get("first", best.plate) if best.readings else best.plate
        result.second = best.readings.get("second") if best.readings else None
        result.agreement = best.agreement
    return result


def _percentile(values: list[float], q: int) -> float:
    ordered = sorted(values) or [0.0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1] if len(ordered) > 1 else ordered[0]


def summarize(results: list[PhotoResult], hot_list: Counter[str] | None) -> dict[str, Any]:
    n = max(len(results), 1)
    exact = sum(r.read == r.expected for r in results)
    within = sum(r.read is not None and edit_distance(r.read, r.expected) <= 1 for r in results)
    no_read = sum(r.read is None for r in results)
    out: dict[str, Any] = {
        "images": len(results),
        "exact": round(exact / n, 4),
        "within_one": round(within / n, 4),
        "no_read": round(no_read / n, 4),
    }
    if hot_list is not None:
        size = sum(hot_list.values())
        hits = [outcome(r.expected, r.read, r.alternatives, hot_list, size) for r in results]
        out["hit_recall"] = round(sum(h.hit for h in hits) / n, 4)
        out["false_hits_per_1000"] = round(1000 * sum(h.expected_false_hits for h in hits) / n, 2)
        out["false_hits_per_1000_all_keys"] = round(1000 * sum(h.expected_false_hits_all_keys for h in hits) / n, 2)
        out["false_hits_per_1000_drawn_list"] = round(1000 * sum(h.false_hits for h in hits) / n, 1)
        out["keys_per_read"] = round(sum(h.keys for h in hits) / n, 2)
    out["p50_ms"] = round(_percentile([r.wall_ms for r in results], 50), 1)
    out["p95_ms"] = round(_percentile([r.wall_ms for r in results], 95), 1)
    out["cpu_ms_per_photo"] = round(statistics.fmean([r.cpu_ms for r in results]) if results else 0.0, 1)
    out["cpu_p50_ms"] = round(_percentile([r.cpu_ms for r in results], 50), 1)
    if any(r.agreement for r in results):
        out["readers"] = readers(results)
    out["misreads"] = [
        {"file": r.file, "expected": r.expected, "read": r.read} for r in results if r.read != r.expected
    ]
    return out


def readers(results: list[PhotoResult]) -> dict[str, Any]:
    """Each reader alone (its own best reading), how often they agree, and how often an agreed reading is right."""
    n = max(len(results), 1)

    def alone(reads: list[str | None]) -> dict[str, float]:
        pairs = list(zip(reads, (r.expected for r in results), strict=True))
        return {
            "exact": round(sum(a == e for a, e in pairs) / n, 4),
            "within_one": round(sum(a is not None and edit_distance(a, e) <= 1 for a, e in pairs) / n, 4),
        }

    both = [r for r in results if r.agreement == "both"]
    return {
        "first": alone([r.first for r in results]),
        "second": alone([r.second for r in results]),
        "either_exact": round(sum(r.expected in (r.first, r.second) for r in results) / n, 4),
        "agreement_rate": round(len(both) / n, 4),
        "precision_when_both": round(sum(r.read == r.expected for r in both) / max(len(both), 1), 4),
        "agreement": dict(Counter(r.agreement or "no_read" for r in results)),
    }


@dataclass
class Evaluation:
    cross: list[PhotoResult] = field(default_factory=list)  # each photo read with what was tuned on the other fold
    all_photos: list[PhotoResult] = field(default_factory=list)  # each photo read with what was tuned on all
    skipped: int = 0  # photos left out: the plate head was trained on them
    load: tuple[float, float] = (0.0, 0.0)  # load average (1 min) at the start and at the end
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self, hit_list_size: int | None = 1_000_000) -> dict[str, Any]:
        hot_list = hot_list_keys(hit_list_size) if hit_list_size else None
        headline = summarize(self.cross, hot_list)
        return {
            **headline,
            "skipped_trained": self.skipped,
            "figure": "cross-fold: fold A read with the settings tuned on fold B, and the other way round",
            "folds": {f: summarize([r for r in self.cross if r.fold == f], hot_list) for f in FOLDS},
            "all_photos": summarize(self.all_photos, hot_list),
            "hot_list_size": hit_list_size,
            "load_average": list(self.load),
            "cpus": os.cpu_count(),
            "tuned": self.tuned,
        }


def evaluate(
    engine: OcrEngine,
    folder: Path,
    options: Options = Options(),
    skip: set[str] = frozenset(),
    overrides: dict[str, Any] | None = None,
    tuned: dict[str, dict[str, Any]] | None = None,
    second_readers: dict[str, Any] | None = None,
) -> Evaluation:
    """Read every labelled photo in `folder` but those named in `skip`: with the settings tuned on the other fold,
    and (where they differ) with those tuned on all photos. `overrides` (a stage) win over tuned settings.
    `second_readers` (a fold: the second reader to read its photos with, e.g. one fine-tuned on the other fold)
    replaces the process's second reader photo by photo, in both readings."""
    tuned = tuned_settings() if tuned is None else tuned
    result = Evaluation(tuned=tuned)
    result.load = (os.getloadavg()[0], 0.0)
    for index, (photo, expected) in enumerate(labelled_photos(folder)):
        if photo.name in skip:
            result.skipped += 1
            continue
        fold = fold_of(index)
        if second_readers:
            use_reader(second_readers[fold])
        cross = with_settings(with_settings(options, tuned[other(fold)]), overrides or {})
        everything = with_settings(with_settings(options, tuned["all"]), overrides or {})
        read = read_photo(engine, photo, fold, expected, cross)
        result.cross.append(read)
        if everything != cross:
            read = read_photo(engine, photo, fold, expected, everything)
        result.all_photos.append(read)
    result.load = (result.load[0], os.getloadavg()[0])
    return result


def trained_on() -> set[str]:
    """Photo names the shipped plate head was trained on (its model card): not fit to measure it on."""
    card = PLATE_HEAD.with_suffix(".json")
    return set(json.loads(card.read_text()).get("trained_on", [])) if card.exists() else set()

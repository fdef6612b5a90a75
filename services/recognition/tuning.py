"""Choose the pipeline's measured settings per fold: `python -m services.recognition.tuning DEV_FOLDER`.

For fold A, fold B and all photos it picks, over a small grid, the decoding settings that read the most plates
exactly on those photos (ties: within one, then fewer no-reads), then which alternatives are sent to the hot list:
the least hit value (`hitrate.hit_value`) that keeps expected false hits per 1,000 reads at or under what the
settings before the format prior gave on the same photos. It writes them to `data/tuned.json`, which `alpr eval-ocr`
reads: each fold is then read with what was chosen on the other. The OCR engine's answers are cached by input, so
the grid costs the decoding only.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from services.recognition.engine import LineScores, OcrEngine, RapidOcrEngine, TextLine
from services.recognition.evaluation import FOLDS, PhotoResult, fold_of, labelled_photos, summarize
from services.recognition.hitrate import hit_value, hot_list_keys
from services.recognition.pipeline import TUNED, Options, recognize_bytes

GRID: dict[str, list[Any]] = {
    "vanity": [0.002, 0.005, 0.01, 0.02],
    "refine_stop": [0.95, 0.0],
    "best_path": [True, False],
    "locate_sure": [0.85, 0.9, 0.95],  # the plate localizer's reading that ends the search (pipeline._sure)
    # The margin a row is read with: the wider first, so it wins ties (drawn plates lose an end character at 0.7).
    "locate_pad": [1.5, 0.7],
}
MAX_ALTERNATIVES = 8
# The default before issue 19: no format prior, no plate localizer (the false-hit budget is what it gave).
# Pinned whole, detection passes included: the budget is what that default gave, not what a later pipeline change
# (issue 18's 640/1024 passes) would make of the same settings.
BEFORE_PRIOR: dict[str, Any] = {
    "prior": False,
    "alternatives": 5,
    "unlisted": 1.0,
    "refine_stop": 0.95,
    "locate": 0,
    "fine_pass": "unsettled",
    "detect_sides": (640, 1280),
}


class CachedEngine:
    """The engine's detections and recognitions remembered by input: a grid of decoding settings reruns cheaply."""

    def __init__(self, engine: OcrEngine) -> None:
        self._engine = engine
        self.charset = engine.charset
        self._det: dict[tuple[str, int], list[TextLine]] = {}
        self._rec: dict[tuple[str, ...], list[LineScores]] = {}

    @staticmethod
    def _key(image: np.ndarray) -> str:
        return hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()

    def detect(self, image: np.ndarray, max_side: int = 960) -> list[TextLine]:
        key = (self._key(image), max_side)
        if key not in self._det:
            self._det[key] = self._engine.detect(image, max_side)
        return self._det[key]

    def recognize(self, lines: list[np.ndarray]) -> list[LineScores]:
        # By batch: a batch pads its lines to the widest, and the padding changes the scores a little.
        key = tuple(self._key(line) for line in lines)
        if key not in self._rec:
            self._rec[key] = [_sparse(s) for s in self._engine.recognize(lines)]
        return [_dense(s, len(self.charset)) for s in self._rec[key]]

    def save(self, path: Path) -> None:
        path.write_bytes(pickle.dumps((self._det, self._rec)))

    def load(self, path: Path) -> None:
        if path.exists():
            self._det, self._rec = pickle.loads(path.read_bytes())  # noqa: S301 - our own file


_TOP = 24  # symbols kept per step in the cache: the rest of the 18,710 hold next to nothing


def _sparse(scores: LineScores) -> LineScores:
    idx = np.argsort(scores.probs, axis=1)[:, -_TOP:].astype(np.int32)
    return LineScores(np.stack([idx.astype(np.float32), np.take_along_axis(scores.probs, idx, axis=1)]))


def _dense(scores: LineScores, symbols: int) -> LineScores:
    idx, vals = scores.probs[0].astype(np.int64), scores.probs[1]
    probs = np.zeros((idx.shape[0], symbols), np.float32)
    np.put_along_axis(probs, idx, vals, axis=1)
    return LineScores(probs)


def run_grid(
    engine: CachedEngine,
    photos: list[tuple[Path, str]],
    base: Options,
    dump: Path | None = None,
    cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Per setting of the grid (and the settings before the prior): each photo's reading."""
    data = [(p, expected, p.read_bytes()) for p, expected in photos]
    runs = []
    settings = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    for setting in [BEFORE_PRIOR, *settings]:
        options = replace(base, **{**setting, "alternatives": MAX_ALTERNATIVES})
        results = []
        for index, (photo, expected, raw) in enumerate(data):
            rec = recognize_bytes(engine, raw, options)
            best = rec.plates[0] if rec.plates else None
            alts = [a for a, _ in best.alternatives] if best else []
            shares = [s for _, s in best.alternatives] if best else []
            read = best.plate if best else None
            results.append(PhotoResult(photo.name, fold_of(index), expected, read, alts, 0, 0, shares))
        runs.append({"setting": setting, "results": results})
        if cache is not None and len(runs) == 1:
            engine.save(cache)  # the OCR of every photo, before the grid (which adds little to it)
        if dump is not None:
            with dump.open("a") as out:
                out.write(json.dumps({"setting": setting, "results": [r.__dict__ for r in results]}) + "\n")
        sys.stderr.write(json.dumps({**setting, **_score(results)}) + "\n")
    return runs


def _score(results: list[PhotoResult]) -> dict[str, Any]:
    s = summarize(results, None)
    return {k: s[k] for k in ("exact", "within_one", "no_read")}


# The least value (expected hits per expected false hit, `hitrate.hit_value`) an alternative must have to be sent.
MIN_VALUES = (0.5, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.02, 0.01)


def _truncated(results: list[PhotoResult], n: int, min_value: float = 0.0) -> list[PhotoResult]:
    """What `decoding.key_alternatives(limit=n, min_share=min_value)` would have sent, from its answer at the most."""

    def kept(r: PhotoResult) -> list[str]:
        shares = r.shares or [1.0] * len(r.alternatives)
        return [a for a, s in zip(r.alternatives, shares, strict=True) if hit_value(a, s) >= min_value][:n]

    return [replace(r, alternatives=kept(r)) for r in results]


def choose(runs: list[dict[str, Any]], fold: str | None) -> dict[str, Any]:
    """The setting chosen on `fold` (None: all photos), with what it measured there.

    Decoding: the most exact reads. Alternatives: up to what ingest sends (8), ranked by value; the operating point
    is the least value threshold (the most alternatives) whose expected false hits per 1,000 reads stay at or under
    what the settings before the format prior gave on the same photos: the false-hit budget decides it, not hit
    counts on ~55 photos, which tie over most thresholds (a tie broken towards fewer keys sends too few on photos
    not seen: measured, docs/recognition-19.md)."""
    hot_list = hot_list_keys()

    def on(results: list[PhotoResult]) -> list[PhotoResult]:
        return [r for r in results if fold is None or r.fold == fold]

    before = summarize(_truncated(on(runs[0]["results"]), int(BEFORE_PRIOR["alternatives"])), hot_list)
    best = max(
        runs[1:],
        key=lambda run: (lambda s: (s["exact"], s["within_one"], -s["no_read"]))(summarize(on(run["results"]), None)),
    )
    # No alternative at all if even the strictest threshold spends more than the budget.
    n, min_value = 0, MIN_VALUES[0]
    measured = summarize(_truncated(on(best["results"]), 0), hot_list)
    for value in MIN_VALUES:
        s = summarize(_truncated(on(best["results"]), MAX_ALTERNATIVES, value), hot_list)
        if s["false_hits_per_1000"] > before["false_hits_per_1000"]:
            break
        n, min_value, measured = MAX_ALTERNATIVES, value, s
    keep = ("exact", "within_one", "no_read", "hit_recall", "false_hits_per_1000", "keys_per_read")
    return {
        "options": {**best["setting"], "alternatives": n, "min_share": min_value},
        "measured_on_these_photos": {k: measured[k] for k in keep},
        "before_prior_on_these_photos": {k: before[k] for k in keep},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=TUNED)
    parser.add_argument("--detect-sides", default="640,1024")
    parser.add_argument("--dump", type=Path, default=None, help="also write each setting's readings here (JSON lines)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the OCR engine's answers in this file")
    args = parser.parse_args(argv)
    photos = labelled_photos(args.folder)
    # The first reader alone: its settings are chosen before the second reader (tune_readers) is added to it.
    base = Options(detect_sides=tuple(int(s) for s in args.detect_sides.split(",")), second=False)
    engine = CachedEngine(RapidOcrEngine())
    if args.cache:
        engine.load(args.cache)
    runs = run_grid(engine, photos, base, args.dump, args.cache)
    if args.cache:
        engine.save(args.cache)
    tuned = {name: choose(runs, fold) for name, fold in (*((f, f) for f in FOLDS), ("all", None))}
    tuned["about"] = {  # type: ignore[assignment]
        "photos": len(photos),
        "grid": GRID,
        "rule": "most exact reads on the fold, then within one, then fewest no-reads; then up to 8 alternatives "
        "ranked by hit value, the least value threshold (min_share) whose expected false hits per 1,000 reads stay "
        "no higher than before the format prior on that fold",
    }
    args.out.write_text(json.dumps(tuned, indent=1) + "\n")
    sys.stdout.write(json.dumps(tuned, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

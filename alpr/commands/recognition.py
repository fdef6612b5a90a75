"""`alpr eval-ocr FOLDER`: the recognition pipeline's accuracy and latency over labelled photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.settings import Settings

# What each stage switches off or on, against today's defaults (`pipeline.Options`).
# Decoding as it was before issue 19 (and no plate localizer: the detector on every photo; a finer detection pass
# whenever the coarser settled nothing, as then).
_BEFORE_PRIOR = {
    "prior": False,
    "alternatives": 5,
    "unlisted": 1.0,
    "locate": 0,
    "fine_pass": "unsettled",
    "detect_sides": (640, 1280),  # the passes of that time (issue 18 made them 640/1024 with its finer-pass rule)
}
_VOTES = {**_BEFORE_PRIOR, "variants": True, "refine_vote": True, "settle": False, "refine_stop": 0.0}
STAGES = {
    # Each stage adds one improvement, in the order they were made (README, "Recognition").
    "crops": {**_VOTES, "plate_decoding": False, "variants": False, "refine": 0},
    "vote": {**_VOTES, "plate_decoding": False, "refine": 0},
    "decoding": {**_VOTES, "syntax": False, "variants": False, "refine": 0},
    "decoding+vote": {**_VOTES, "syntax": False, "refine": 0},
    "syntax": {**_VOTES, "variants": False, "refine": 0},
    "syntax+vote": {**_VOTES, "refine": 0},
    "refine1": {**_VOTES, "refine": 1, "choose": False, "number_line": False},
    "choose": {**_VOTES, "number_line": False},
    "number_line": _VOTES,
    "settle": {**_VOTES, "settle": True},
    "before-prior": {**_BEFORE_PRIOR, "refine_stop": 0.95},  # the default before the plate-format prior (issue 19)
    "detector": {"locate": 0},  # full, but the text detector on every photo (no plate localizer first)
    "no-fallback": {"locate_fallback": False},  # full, but no reading when no path reads a plate surely
    "full": {},  # localizer, format prior in decoding, settings tuned per fold (data/tuned.json): the default
    # full, but a finer detection pass also when the coarser one's best reading is not sure (the default before
    # issue 18's second pass; with --detect-sides 640,1280: that default whole)
    "fine-unsettled": {"fine_pass": "unsettled"},
    "lookalike": {"lookalike": 0.5},  # full + look-alike letters among the alternatives (measured, not adopted)
    "plate_head": {"plate_head": True},  # full + our plate head's scores mixed in at head_weight
    # Issue 27: the first reader alone, and hand-tuned steps re-measured with the second reader in place.
    "one-reader": {"second": False},
    "no-number-line": {"number_line": False},
    "refine-1": {"refine": 1},
    "no-refine": {"refine": 0},
    "no-fallback-2": {"locate_fallback": False},
    "regions-3": {"second_regions": 3},
    "no-proposals": {"proposals": 0},  # full, but no plate proposed by its shape (proposals.py)
    "proposals-8": {"proposals": 8},
}


def cmd_eval_ocr(args: argparse.Namespace, settings: Settings) -> int:
    from services.recognition.engine import RapidOcrEngine
    from services.recognition.evaluation import evaluate, trained_on
    from services.recognition.pipeline import Options

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"no such folder: {folder}")
        return 2
    sides = tuple(int(side) for side in args.detect_sides.split(",")) if args.detect_sides else None
    sides = sides or settings.recognition_detect_sides
    options = Options(detect_sides=sides)
    stage = dict(STAGES[args.stage])
    if args.detect_sides:
        stage["detect_sides"] = sides
    plate_head = bool(stage.get("plate_head"))
    # The service's thread setting by default, so CPU and time per photo are what the service spends.
    engine = RapidOcrEngine(threads=args.threads or settings.recognition_intra_op_threads, plate_head=plate_head)
    # Photos the plate head learnt from are left out when it reads (or, with --held-out, for any stage: to compare
    # a stage with the head on the same photos).
    skip = trained_on() if (plate_head or args.held_out) and not args.include_trained else set()
    if args.second_reader_weights:
        # Measuring another model file (a fine-tune: `make train-ocr MODEL=second-reader`) is the point here, so its
        # own sum is accepted; the service still refuses any file but the shipped one (second_reader.WEIGHTS_SHA256).
        from services.recognition.second_opinion import use_reader
        from services.recognition.second_reader import PlateReader, sha256_of

        weights = Path(args.second_reader_weights)
        if not weights.is_file():
            print(f"no such file: {weights}")
            return 2
        use_reader(PlateReader(weights, expected=sha256_of(weights)))
    readers = None
    if args.second_reader_weights_fold:
        if args.second_reader_weights:
            print("--second-reader-weights and --second-reader-weights-fold: one or the other")
            return 2
        try:
            per_fold = fold_weights(args.second_reader_weights_fold)
            readers = fold_readers(folder, per_fold)
        except ValueError as error:
            print(error)
            return 2
    summary = evaluate(engine, folder, options, skip, overrides=stage, second_readers=readers).summary(
        args.hot_list or None
    )
    if args.json:
        print(json.dumps(summary))
        return 0
    print(_table(summary))
    return 0


def fold_weights(values: list[str]) -> dict[str, Path]:
    """`--second-reader-weights-fold FOLD=FILE`, once for each fold: the file that reads that fold's photos."""
    from services.recognition.evaluation import FOLDS

    out: dict[str, Path] = {}
    for value in values:
        fold, sep, path = value.partition("=")
        fold = fold.strip().upper()
        if not sep or not path.strip():
            raise ValueError(f"{value!r}: FOLD=FILE, e.g. A=var/second-reader/trained-on-B.onnx")
        if fold not in FOLDS:
            raise ValueError(f"{value!r}: the fold is one of {', '.join(FOLDS)}")
        if fold in out:
            raise ValueError(f"fold {fold} named twice")
        out[fold] = Path(path.strip())
    missing = [f for f in FOLDS if f not in out]
    if missing:
        raise ValueError(f"no weights for fold {', '.join(missing)}: name a file for each fold")
    return out


def fold_readers(folder: Path, per_fold: dict[str, Path]) -> dict[str, Any]:
    """A second reader per fold, built from files whose own sums are accepted (measuring another model is the point;
    the service still refuses any file but the shipped one). A file whose model card (FILE.json, written by
    `second.py`) says it was trained on a photo of the fold it would read is refused: that figure would be seen."""
    from services.recognition.evaluation import fold_of, labelled_photos
    from services.recognition.second_reader import PlateReader, sha256_of

    names: dict[str, set[str]] = {f: set() for f in per_fold}
    for index, (photo, _) in enumerate(labelled_photos(folder)):
        names[fold_of(index)].add(photo.name)
    readers = {}
    for fold, weights in per_fold.items():
        if not weights.is_file():
            raise ValueError(f"no such file: {weights}")
        card = weights.with_suffix(".json")
        seen = set(json.loads(card.read_text()).get("trained_on") or []) if card.is_file() else set()
        if seen & names[fold]:
            raise ValueError(f"{weights.name} was trained on {len(seen & names[fold])} photos of fold {fold}")
        readers[fold] = PlateReader(weights, expected=sha256_of(weights))
    return readers


_ROWS = (
    ("images", "{}"),
    ("exact", "{:.1%}"),
    ("within_one", "{:.1%}"),
    ("no_read", "{:.1%}"),
    ("hit_recall", "{:.1%}"),
    ("false_hits_per_1000", "{:.2f}"),
    ("p50_ms", "{:.0f} ms"),
    ("p95_ms", "{:.0f} ms"),
    ("cpu_ms_per_photo", "{:.0f} ms"),
)


def _table(summary: dict[str, Any]) -> str:
    skipped = summary["skipped_trained"]
    left_out = f" ({skipped} left out: the plate head learnt from them)" if skipped else ""
    columns = [("cross-fold", summary), *((f"fold {f}", s) for f, s in summary["folds"].items())]
    columns.append(("all photos*", summary["all_photos"]))
    lines = [f"{'':<20}" + "".join(f"{name:>14}" for name, _ in columns)]
    for key, fmt in _ROWS:
        if key in summary:
            lines.append(f"{key:<20}" + "".join(f"{fmt.format(col[key]):>14}" for _, col in columns))
    load = summary["load_average"]
    lines += [
        f"{skipped} photos left out{left_out}" if skipped else "",
        "fold A is read with what was tuned on fold B and the other way round; * tuned on the photos it reads",
        f"load average {load[0]:.2f} at the start, {load[1]:.2f} at the end, {summary['cpus']} CPUs",
        "",
        f"{'file':<44} {'expected':<10} read",
    ]
    lines += [f"{m['file']:<44} {m['expected']:<10} {m['read'] or '(none)'}" for m in summary["misreads"]]
    return "\n".join(lines)


def register(sub: Any) -> None:
    p = sub.add_parser("eval-ocr", help="plate-reading accuracy and latency over a folder of labelled photos")
    p.add_argument("folder", help="photos with NAME.txt labels: `NAME.jpg x y w h PLATE`")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--stage", choices=sorted(STAGES), default="full", help="pipeline stage to measure")
    p.add_argument("--detect-sides", default=None, help="detection passes, e.g. 960,1600 (default: the setting)")
    p.add_argument("--held-out", action="store_true", help="only photos the plate head was not trained on, any stage")
    p.add_argument("--include-trained", action="store_true", help="with the plate head, also the photos it learnt")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: the service's setting, 1)")
    p.add_argument("--second-reader-weights", default=None, help="another second-reader ONNX file to measure")
    p.add_argument(
        "--second-reader-weights-fold",
        action="append",
        default=[],
        metavar="FOLD=FILE",
        help="the second-reader ONNX file that reads fold FOLD's photos (one trained on the other fold); once per fold",
    )
    p.add_argument("--hot-list", type=int, default=1_000_000, help="size of the generated hot list (0: no hit figures)")
    p.set_defaults(func=cmd_eval_ocr)

"""`alpr eval-ocr FOLDER`: the recognition pipeline's accuracy and latency over labelled photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.settings import Settings

# What each stage switches off or on, against today's defaults (`pipeline.Options`).
_VOTES = {"variants": True, "refine_vote": True, "settle": False, "refine_stop": 0.0}  # before the fast path
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
    "full": {},  # settle, no votes, stop refining at a sure reading: the default
    "plate_head": {"plate_head": True},  # full + our plate head's scores mixed in at head_weight
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
    options = Options(**{**STAGES[args.stage], "detect_sides": sides})  # type: ignore[arg-type]
    engine = RapidOcrEngine(threads=args.threads, plate_head=options.plate_head)
    # Photos the plate head learnt from are left out when it reads (or, with --held-out, for any stage: to compare
    # a stage with the head on the same photos).
    skip = trained_on() if (options.plate_head or args.held_out) and not args.include_trained else set()
    summary = evaluate(engine, folder, options, skip).summary()
    if args.json:
        print(json.dumps(summary))
        return 0
    print(_table(summary))
    return 0


def _table(summary: dict[str, Any]) -> str:
    skipped = summary["skipped_trained"]
    left_out = f" ({skipped} left out: the plate head learnt from them)" if skipped else ""
    lines = [
        f"images      {summary['images']}{left_out}",
        f"exact       {summary['exact']:.1%}",
        f"within one  {summary['within_one']:.1%}",
        f"no read     {summary['no_read']:.1%}",
        f"p50         {summary['p50_ms']:.0f} ms",
        f"p95         {summary['p95_ms']:.0f} ms",
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
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.set_defaults(func=cmd_eval_ocr)

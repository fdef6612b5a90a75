"""Choose, per fold, which alternatives of the two readers go to the hot list: `python -m
services.recognition.tune_readers DEV_FOLDER` (after `services.recognition.tuning`, whose settings it reads).

Each photo is read once by the first reader (with the settings tuned on the other fold, as `alpr eval-ocr` reads it)
and its candidate regions once by the second; arbitration is then replayed for each threshold of hit value
(`hitrate.hit_value`, expected hits per expected false hit) an alternative must reach. On each fold the least
threshold (the most alternatives) whose expected false hits per 1,000 reads against a 1 M list stay within
BUDGET_SHARE of FALSE_HIT_BUDGET is chosen, and written to `data/tuned.json` as that fold's `pair_min_value`:
`alpr eval-ocr` reads fold A with fold B's and the other way round, so the cross-fold figure was not tuned on the
photos it measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from services.recognition import imaging
from services.recognition.arbitration import arbitrate
from services.recognition.engine import RapidOcrEngine
from services.recognition.evaluation import FOLDS, PhotoResult, fold_of, labelled_photos, other, summarize
from services.recognition.hitrate import hit_value, hot_list_keys
from services.recognition.pipeline import TUNED, Options, recognize_image, tuned_settings, with_settings
from services.recognition.second_opinion import first_readings, get_reader, read_candidates, second_readings

FALSE_HIT_BUDGET = 3.6  # expected false hits per 1,000 reads, 1 M list (issue 27's bound)
# Each fold is held to this share of the budget: at one threshold the two folds' false hits differ by 2-3x (2.8 and
# 7.5 per 1,000 at 0; docs/recognition-27.md), so a threshold just within the budget on one overspends on the other.
BUDGET_SHARE = 0.5
VALUES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


def harvest(folder: Path) -> list[dict[str, Any]]:
    engine, reader, tuned = RapidOcrEngine(threads=1), get_reader(), tuned_settings()
    out = []
    for index, (photo, expected) in enumerate(labelled_photos(folder)):
        fold = fold_of(index)
        options = replace(with_settings(Options(), tuned[other(fold)]), second=False)
        image = imaging.decode(photo.read_bytes())
        result = recognize_image(engine, image, options)
        _, slots = read_candidates(reader, image, result, options)
        out.append({"file": photo.name, "fold": fold, "expected": expected, "result": result, "slots": slots,
                    "vanity": options.vanity})  # fmt: skip
    return out


def replay(photos: list[dict[str, Any]], min_value: float) -> list[PhotoResult]:
    results = []
    for p in photos:
        verdict = arbitrate(first_readings(p["result"]), second_readings(p["slots"]), p["vanity"], 20)
        alts = [t for t, q in (verdict.alternatives if verdict else []) if hit_value(t, q) >= min_value][:8]
        read = verdict.plate if verdict else None
        results.append(PhotoResult(p["file"], p["fold"], p["expected"], read, alts, 0.0, 0.0))
    return results


def choose(photos: list[dict[str, Any]]) -> dict[str, Any]:
    hot_list = hot_list_keys()
    chosen: dict[str, Any] = {"pair_min_value": VALUES[-1]}
    for value in VALUES:
        s = summarize(replay(photos, value), hot_list)
        if s["false_hits_per_1000"] <= BUDGET_SHARE * FALSE_HIT_BUDGET:
            keep = ("exact", "within_one", "hit_recall", "false_hits_per_1000", "keys_per_read")
            chosen = {"pair_min_value": value, "measured_on_these_photos": {k: s[k] for k in keep}}
            break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=TUNED)
    args = parser.parse_args(argv)
    photos = harvest(args.folder)
    tuned = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in (*FOLDS, "all"):
        on = [p for p in photos if name == "all" or p["fold"] == name]
        choice = choose(on)
        tuned.setdefault(name, {}).setdefault("options", {})["pair_min_value"] = choice["pair_min_value"]
        tuned[name]["two_readers_on_these_photos"] = choice.get("measured_on_these_photos")
        sys.stderr.write(f"{name}: {json.dumps(choice)}\n")
    tuned.setdefault("about", {})["two_readers"] = (
        "pair_min_value: the least hit value of an alternative of either reader sent to the hot list, the least "
        f"threshold whose expected false hits per 1,000 reads (1 M list) stay within {BUDGET_SHARE} x "
        f"{FALSE_HIT_BUDGET} on that fold "
        "(python -m services.recognition.tune_readers)"
    )
    args.out.write_text(json.dumps(tuned, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`alpr eval-ocr` on a folder of photos the test draws and labels itself."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from alpr.cli import main
from services.recognition.evaluation import edit_distance
from tests.recognition.render import plate_image, scene_without_plate


def test_edit_distance() -> None:
    assert edit_distance("ABC123", "ABC123") == 0
    assert edit_distance("ABC123", "A8C123") == 1
    assert edit_distance("ABC123", "ABC1234") == 1
    assert edit_distance("ABC", "") == 3


def test_eval_ocr_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, text, image in (
        ("a", "HRT482", plate_image("HRT482")),
        ("b", "MX5521", scene_without_plate()),  # labelled, but nothing to read: a no-read
    ):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), image)
        (tmp_path / f"{name}.txt").write_text(f"{name}.jpg 10 10 100 50 {text}\n")
    assert main(["eval-ocr", str(tmp_path), "--json", "--hot-list", "20000"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["images"] == 2
    assert out["exact"] == 0.5 and out["within_one"] == 0.5 and out["no_read"] == 0.5
    assert out["hit_recall"] == 0.5 and out["false_hits_per_1000"] >= 0 and out["keys_per_read"] >= 0.5
    assert out["p50_ms"] > 0 and out["p95_ms"] >= out["p50_ms"] and out["cpu_ms_per_photo"] > 0
    assert out["misreads"] == [{"file": "b.jpg", "expected": "MX5521", "read": None}]
    # Two folds by sorted name (a.jpg in A, b.jpg in B), and the figure on all photos beside the cross-fold one.
    assert out["folds"]["A"]["images"] == 1 and out["folds"]["A"]["exact"] == 1.0
    assert out["folds"]["B"]["images"] == 1 and out["folds"]["B"]["no_read"] == 1.0
    assert out["all_photos"]["images"] == 2 and len(out["load_average"]) == 2


def test_photos_the_plate_head_learnt_from_are_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.recognition.evaluation import trained_on

    seen = sorted(trained_on())
    assert seen, "the shipped plate head lists the photos it was trained on"
    for name, text in ((Path(seen[0]).stem, "HRT482"), ("unseen", "HRT482")):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), plate_image(text))
        (tmp_path / f"{name}.txt").write_text(f"{name}.jpg 10 10 100 50 {text}\n")
    for args in (["--stage", "plate_head"], ["--held-out"]):
        assert main(["eval-ocr", str(tmp_path), "--json", *args]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["images"] == 1 and out["skipped_trained"] == 1 and out["exact"] == 1.0
    for args in (["--stage", "plate_head", "--include-trained"], []):
        assert main(["eval-ocr", str(tmp_path), "--json", *args]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["images"] == 2 and out["skipped_trained"] == 0


def test_each_fold_is_read_with_what_was_tuned_on_the_other(tmp_path: Path) -> None:
    from services.recognition.engine import get_engine
    from services.recognition.evaluation import evaluate
    from services.recognition.pipeline import Options

    for name, text in (("a", "HRT482"), ("b", "KXR482")):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), plate_image(text))
        (tmp_path / f"{name}.txt").write_text(f"{name}.jpg 10 10 100 50 {text}\n")
    # Fold A's choice (no alternatives) must read fold B's photo, and fold B's (up to 8) fold A's.
    tuned = {
        "A": {"alternatives": 0},
        "B": {"alternatives": 8, "min_share": 0.0, "pair_min_value": 0.0},
        "all": {"alternatives": 0},
    }
    result = evaluate(get_engine(), tmp_path, Options(), tuned=tuned)
    by_file = {r.file: r for r in result.cross}
    assert by_file["a.jpg"].fold == "A" and by_file["a.jpg"].alternatives
    assert by_file["b.jpg"].fold == "B" and by_file["b.jpg"].alternatives == []
    assert all(r.alternatives == [] for r in result.all_photos)

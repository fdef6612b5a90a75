"""Fine-tuning the second reader (`make train-ocr MODEL=second-reader`): its synthetic whole-plate crops, the check
its exported file must pass, and how `alpr eval-ocr` measures another weights file while the service refuses it.
(Training itself needs PyTorch, which the service and its tests do not install: the last test runs it where present.)"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from alpr.cli import main
from services.recognition.evaluation import edit_distance
from services.recognition.grammar import grammar
from services.recognition.second_reader import ALPHABET, PAD, WEIGHTS, PlateReader, WeightsMismatch
from services.recognition.training.plates import check_signature, make, slots
from tests.recognition.render import plate_image


def test_synthetic_plates_are_seeded_whole_plate_crops_in_listed_formats() -> None:
    images, targets, labels = make(32, seed=11)
    again, _, labels_again = make(32, seed=11)
    assert np.array_equal(images, again) and labels == labels_again
    assert images.shape == (32, 64, 128, 3) and images.dtype == np.uint8
    decoded = ["".join(ALPHABET[k] for k in row).rstrip(PAD) for row in targets]
    assert decoded == labels
    assert all("O" not in label for label in labels)  # our plates write the round glyph 0
    listed = grammar()
    assert sum(listed.fits(label) for label in labels) >= 28  # vanity plates are the rest (5 %)
    assert len(set(labels)) == 32
    # The shipped model, trained on whole-plate boxes, reads most of them: the crops are cut as it expects.
    reads = PlateReader().read([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images])
    assert sum(edit_distance(r.text, label) <= 1 for r, label in zip(reads, labels, strict=True)) >= 20


def test_half_the_serials_can_be_drawn_with_a_truetype_font() -> None:
    plain, _, _ = make(6, seed=5)
    drawn, _, labels = make(6, seed=5, fonts=(None,))  # Pillow's built-in font: no font file needed
    assert drawn.shape == plain.shape and not np.array_equal(drawn, plain)
    assert np.array_equal(make(6, seed=5, fonts=(None,))[0], drawn)
    reads = PlateReader().read([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in drawn])
    assert sum(edit_distance(r.text, label) <= 1 for r, label in zip(reads, labels, strict=True)) >= 3


def test_slot_targets_pad_to_ten() -> None:
    assert list(slots("4EEU387")) == [ALPHABET.index(ch) for ch in "4EEU387___"]


def _changed_model(tmp_path: Path) -> Path:
    """The shipped graph with the slots' bias nudged: another file, the same signature (as a fine-tune would be)."""
    model = onnx.load(str(WEIGHTS))
    for tensor in model.graph.initializer:
        if tensor.name.endswith("dense_16_1/BiasAdd/ReadVariableOp:0"):
            bias = numpy_helper.to_array(tensor).copy()
            bias[ALPHABET.index("B")] += 0.5
            tensor.CopyFrom(numpy_helper.from_array(bias, tensor.name))
            break
    else:
        raise AssertionError("the slots' bias is not where it was")
    path = tmp_path / "fine.onnx"
    onnx.save(model, str(path))
    return path


def test_the_export_check_accepts_the_signature_and_refuses_another(tmp_path: Path) -> None:
    check_signature(WEIGHTS)
    check_signature(_changed_model(tmp_path))
    with pytest.raises(ValueError, match="input"):
        check_signature(Path(__file__).parents[2] / "services/recognition/models/plate_head.onnx")


def test_eval_ocr_measures_another_weights_file_the_service_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = _changed_model(tmp_path)
    with pytest.raises(WeightsMismatch, match="SHA-256"):
        PlateReader(changed)  # what the service builds from ALPR_RECOGNITION_SECOND_READER_WEIGHTS
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), plate_image("HRT482"))
    (photos / "a.txt").write_text("a.jpg 10 10 100 50 HRT482\n")
    args = ["eval-ocr", str(photos), "--json", "--hot-list", "20000", "--second-reader-weights"]
    assert main([*args, str(changed)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["images"] == 1 and out["readers"]["second"]["exact"] == 1.0
    assert main([*args, str(tmp_path / "absent.onnx")]) == 2

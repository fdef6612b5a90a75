"""Fine-tuning the second reader on one fold's real photos (`second.py --photos FOLDER --fold A|B`, issue 27): the
crops come from that fold's photos only, and `alpr eval-ocr --second-reader-weights-fold` reads each fold with its own
file and refuses one trained on a photo it would read. (The training itself needs PyTorch: not run here.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from alpr.cli import main
from alpr.commands.recognition import fold_weights
from services.recognition.second_reader import ALPHABET, PAD, WEIGHTS, PlateReader, plate_crop
from services.recognition.training.real import fold_photos, make_real, number_quad
from tests.recognition.render import plate_image

# plate_image's plate: 300 × 150 at (330, 352) in a 960 × 640 scene.
BOX = "330 352 300 150"


def _photos(folder: Path, plates: dict[str, str]) -> Path:
    folder.mkdir()
    for name, plate in plates.items():
        cv2.imwrite(str(folder / f"{name}.jpg"), plate_image(plate))
        (folder / f"{name}.txt").write_text(f"{name}.jpg {BOX} {plate}\n")
    return folder


def test_fold_weights_names_one_file_per_fold() -> None:
    assert fold_weights(["A=x/on-b.onnx", "b= y.onnx"]) == {"A": Path("x/on-b.onnx"), "B": Path("y.onnx")}
    for values, error in (
        (["A=a.onnx"], "no weights for fold B"),
        (["A=a.onnx", "A=b.onnx", "B=c.onnx"], "named twice"),
        (["C=a.onnx", "B=b.onnx"], "one of A, B"),
        (["a.onnx", "B=b.onnx"], "FOLD=FILE"),
        (["A=", "B=b.onnx"], "FOLD=FILE"),
    ):
        with pytest.raises(ValueError, match=error):
            fold_weights(values)


def test_real_crops_come_from_one_fold_cut_as_the_reader_cuts(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", {"a": "HRT482", "b": "MX5521", "c": "KLB271"})
    assert [p.name for p, _, _ in fold_photos(photos, "A")] == ["a.jpg", "c.jpg"]  # name order: A, B, A
    images, targets, labels, names = make_real(photos, "B", per_photo=5, seed=3)
    assert names == ["b.jpg"] and labels == ["MX5521"] * 5 and images.shape == (5, 64, 128, 3)
    assert ["".join(ALPHABET[k] for k in row).rstrip(PAD) for row in targets] == labels
    again, _, _, _ = make_real(photos, "B", per_photo=5, seed=3)
    assert np.array_equal(images, again)  # seeded
    # The first crop is plate_crop of the number's box, which its margins grow back into the labelled plate box.
    quad = number_quad(330, 352, 300, 150)
    plain = plate_crop(cv2.imread(str(photos / "b.jpg")), quad)
    assert np.array_equal(images[0], cv2.cvtColor(plain, cv2.COLOR_BGR2RGB))
    assert not np.array_equal(images[0], images[1])  # the others jittered and augmented
    reads = PlateReader().read([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images])
    assert reads[0].text == "MX5521"


def test_eval_ocr_reads_each_fold_with_its_file_and_refuses_one_trained_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = _photos(tmp_path / "photos", {"a": "HRT482", "b": "MX5521"})
    files = {}
    for fold, trained_on in (("A", "b.jpg"), ("B", "a.jpg")):  # each trained on the other fold's photo
        files[fold] = tmp_path / f"trained-on-{trained_on[0]}.onnx"
        shutil.copy(WEIGHTS, files[fold])
        files[fold].with_suffix(".json").write_text(json.dumps({"trained_on": [trained_on]}))
    args = ["eval-ocr", str(photos), "--json", "--hot-list", "20000"]
    assert (
        main(
            [
                *args,
                "--second-reader-weights-fold",
                f"A={files['A']}",
                "--second-reader-weights-fold",
                f"B={files['B']}",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["images"] == 2 and out["readers"]["second"]["exact"] == 1.0
    # Swapped, each file would read the photo it learnt from.
    assert (
        main(
            [
                *args,
                "--second-reader-weights-fold",
                f"A={files['B']}",
                "--second-reader-weights-fold",
                f"B={files['A']}",
            ]
        )
        == 2
    )
    assert "trained on 1 photos of fold A" in capsys.readouterr().out
    assert main([*args, "--second-reader-weights-fold", f"A={files['A']}"]) == 2
    both = [*args, "--second-reader-weights", str(WEIGHTS), "--second-reader-weights-fold", f"A={files['A']}"]
    assert main([*both, "--second-reader-weights-fold", f"B={files['B']}"]) == 2

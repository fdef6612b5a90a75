"""Real whole-plate crops from one fold of labelled photos, for fine-tuning the second reader (`second.py --photos
FOLDER --fold A|B`; issue 27, measured and not adopted: docs/recognition-27.md).

Each photo's labelled plate box (`NAME.txt`: `NAME.jpg x y w h PLATE`, a whole plate) is turned into the number's
box that `second_reader.plate_crop` would grow back into it (a third of its height, two thirds of its width,
centred), then cut as `plates.whole_plate_crop` cuts synthetic plates: the box jittered like a detector's and the
margins varied, so the crops look like those the pipeline hands the reader. Each cut is augmented (a small rotation
and shear of the box, blur, brightness and contrast, a smaller camera, JPEG).

Only the photos of the named fold (`evaluation.fold_of`, the split every cross-fold figure uses) are read: a model
trained on fold A is measured on fold B only (`alpr eval-ocr --second-reader-weights-fold B=FILE`), and the other
way round. Needs only NumPy and OpenCV, so the tests run it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.recognition.evaluation import FOLDS, fold_of, labelled_photos
from services.recognition.second_reader import ALPHABET, HEIGHT, MARGIN_X, MARGIN_Y, WIDTH, plate_crop
from services.recognition.training.plates import SLOTS, slots, whole_plate_crop


def fold_photos(folder: Path, fold: str) -> list[tuple[Path, np.ndarray, str]]:
    """The fold's labelled photos: each one's path, the number's quad inside its plate box, and its plate."""
    if fold not in FOLDS:
        raise ValueError(f"fold {fold!r}: one of {FOLDS}")
    out = []
    for index, (photo, plate) in enumerate(labelled_photos(folder)):
        if fold_of(index) != fold:
            continue
        if len(plate) > SLOTS or any(ch not in ALPHABET for ch in plate):
            continue  # the model cannot write it
        x, y, w, h = (float(v) for v in photo.with_suffix(".txt").read_text().split()[1:5])
        out.append((photo, number_quad(x, y, w, h), plate))
    return out


def number_quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    """The number's box that `plate_crop`'s margins grow into the plate box (x, y, w, h)."""
    nw, nh = w / (1 + 2 * MARGIN_X), h / (1 + 2 * MARGIN_Y)
    cx, cy = x + w / 2, y + h / 2
    return np.array(
        [
            [cx - nw / 2, cy - nh / 2],
            [cx + nw / 2, cy - nh / 2],
            [cx + nw / 2, cy + nh / 2],
            [cx - nw / 2, cy + nh / 2],
        ],
        np.float32,
    )


def _tilted(quad: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The quad turned by a few degrees and sheared a little about its centre (a camera's angle)."""
    angle = np.deg2rad(rng.uniform(-4, 4))
    shear = rng.uniform(-0.12, 0.12)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    skew = np.array([[1.0, shear], [0.0, 1.0]], np.float32)
    centre = quad.mean(axis=0)
    return ((quad - centre) @ (turn @ skew).T + centre).astype(np.float32)


def _degraded(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, brightness and contrast, a smaller camera, JPEG: each now and then."""
    out = crop
    if rng.random() < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.3))
    if rng.random() < 0.3:
        scale = rng.uniform(0.35, 0.7)
        small = cv2.resize(out, (max(8, int(WIDTH * scale)), max(4, int(HEIGHT * scale))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.7:
        alpha, beta = rng.uniform(0.65, 1.35), rng.uniform(-35, 35)
        out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        out = out if decoded is None else decoded
    return out


def make_real(
    folder: Path, fold: str, per_photo: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """`per_photo` augmented crops of each of the fold's photos (uint8 NHWC RGB, as the model takes them), their slot
    targets and plates, and the photos' names (the model card lists them: none may be measured with that model).
    The first crop of each photo is the plain cut (no jitter, no augmentation)."""
    rng = np.random.default_rng(seed)
    photos = fold_photos(folder, fold)
    count = len(photos) * per_photo
    images = np.empty((count, HEIGHT, WIDTH, 3), np.uint8)
    targets = np.empty((count, SLOTS), np.int64)
    labels = []
    i = 0
    for photo, quad, plate in photos:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"unreadable photo: {photo}")
        for k in range(per_photo):
            if k == 0:
                crop = plate_crop(image, quad)
            else:
                crop = _degraded(whole_plate_crop(image, _tilted(quad, rng), rng), rng)
            images[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
            targets[i] = slots(plate)
            labels.append(plate)
            i += 1
    return images, targets, labels, [p.name for p, _, _ in photos]

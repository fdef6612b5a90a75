"""The plate head's training set: line crops (synthetic, and optionally real ones from labelled photos), passed
through the frozen PP-OCR recognizer once, kept as its per-step features and folded scores with their labels.

Real crops are the ones the pipeline itself cuts from a photo (every line it reads on the way), kept when PP-OCR's
reading of them is close to the label, so the head learns on the crops it will see at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from services.recognition import imaging
from services.recognition.decoding import PlateDecoder, fold, plate_columns
from services.recognition.engine import LineScores, RapidOcrEngine
from services.recognition.evaluation import edit_distance, labelled_photos
from services.recognition.pipeline import Options, recognize_image
from services.recognition.training.synth import sample


@dataclass
class Example:
    features: np.ndarray  # (T, 120) float16
    folded: np.ndarray  # (T, 38) float16, log probabilities
    label: str


def synthetic_crops(count: int, seed: int) -> Iterator[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield sample(rng)


class _Recorder:
    """An engine that remembers every line crop the pipeline asks it to read."""

    def __init__(self, engine: RapidOcrEngine) -> None:
        self._engine = engine
        self.charset = engine.charset
        self.crops: list[np.ndarray] = []

    def detect(self, image: np.ndarray, max_side: int = 960):  # type: ignore[no-untyped-def]
        return self._engine.detect(image, max_side)

    def recognize(self, lines: list[np.ndarray]) -> list[LineScores]:
        self.crops += lines
        return self._engine.recognize(lines)


def _augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = crop.shape[:2]
    matrix = np.array(
        [[rng.uniform(0.92, 1.08), rng.uniform(-0.08, 0.08), rng.uniform(-0.04, 0.04) * w],
         [rng.uniform(-0.02, 0.02), rng.uniform(0.94, 1.06), rng.uniform(-0.06, 0.06) * h]], np.float32,
    )  # fmt: skip
    out = cv2.warpAffine(crop, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    out = np.clip(out.astype(np.float32) * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30), 0, 255)
    out = np.clip(out + rng.normal(0, rng.uniform(0, 8), out.shape), 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 95))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def real_crops(
    engine: RapidOcrEngine, folder: Path, names: set[str], copies: int, seed: int
) -> Iterator[tuple[np.ndarray, str]]:
    """Line crops from the labelled photos named in `names`: what the pipeline cuts (with PP-OCR's own decoding)
    and the number line of the labelled box, each with `copies` augmented copies."""
    rng = np.random.default_rng(seed)
    decoder = PlateDecoder(engine.charset)
    # Every crop the slower, voting path cuts (more crops of each plate to learn from), read by PP-OCR alone.
    baseline = Options(plate_head=False, variants=True, refine_vote=True, settle=False, refine_stop=0.0)
    for photo, label in labelled_photos(folder):
        if photo.name not in names:
            continue
        image = imaging.decode(photo.read_bytes())
        recorder = _Recorder(engine)
        recognize_image(recorder, image, baseline)  # type: ignore[arg-type]
        parts = (folder / f"{photo.stem}.txt").read_text().split()
        x, y, w, h = (int(v) for v in parts[1:5])
        region = image[max(0, y - h // 6) : y + h + h // 6, max(0, x - w // 10) : x + w + w // 10]
        if region.size:
            scale = max(1.0, 128 / region.shape[0])
            region = imaging.upscaled(region, scale)
            box = imaging.number_line(region)
            if box is not None:
                quad = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]], np.float32)
                recorder.crops.append(imaging.crop_line(region, quad, margin_x=0.0, margin_y=0.0))
        kept = 0
        for crop, scores in zip(recorder.crops, engine.recognize(recorder.crops), strict=True):
            text = decoder.decode(scores.probs).text
            if len(text) < len(label) - 1 or edit_distance(text, label) > max(1, len(label) // 3):
                continue  # a crop of another line, or of part of the plate: it would teach the head to invent
            kept += 1
            yield crop, label
            for _ in range(copies):
                yield _augment(crop, rng), label
        print(f"{photo.name}: {label} {kept} crops")  # noqa: T201


def encode(engine: RapidOcrEngine, crops: Iterator[tuple[np.ndarray, str]], batch: int = 16) -> list[Example]:
    """Run the frozen recognizer over the crops (batched by width, as the engine pads a batch to its widest)."""
    columns = plate_columns(engine.charset)
    items = list(crops)
    items.sort(key=lambda item: item[0].shape[1] / item[0].shape[0])
    out: list[Example] = []
    for start in range(0, len(items), batch):
        group = items[start : start + batch]
        for (_, label), scores in zip(group, engine.recognize([crop for crop, _ in group]), strict=True):
            folded = np.log(np.clip(fold(scores.probs, columns), 1e-6, 1.0))
            assert scores.features is not None, "encode with an engine built with features=True"
            out.append(Example(scores.features.astype(np.float16), folded.astype(np.float16), label))
    return out


def save(examples: list[Example], path: Path) -> None:
    np.savez_compressed(
        path,
        features=np.array([e.features for e in examples], dtype=object),
        folded=np.array([e.folded for e in examples], dtype=object),
        labels=np.array([e.label for e in examples]),
    )


def load(path: Path) -> list[Example]:
    data = np.load(path, allow_pickle=True)
    return [Example(f, p, str(lbl)) for f, p, lbl in zip(data["features"], data["folded"], data["labels"], strict=True)]

"""Synthetic whole-plate crops for fine-tuning the second reader (`second.py`), and the check its export must pass.

The second reader (fast-plate-ocr's CCT-XS) was trained on whole-plate boxes, so each sample is a plate drawn by
`synth.render_plate` (OpenCV's own Hershey fonts: no font file, the same seed draws the same samples on any machine),
photographed by `synth.photograph`, then cut the way `second_reader.plate_crop` cuts the number's box at run time
(one number-height above and below, a quarter of its width each side), the box jittered like a detector's. With
`--font` (`second.py`), half the serials are drawn with a TrueType font through Pillow instead (tried: DejaVu Sans
Condensed Bold, Bitstream Vera licence, Debian's fonts-dejavu-extra). The serials follow the state format tables the
decoder's prior uses (`data/plate_formats.toml`): a state drawn by its registered vehicles, then one of its formats
by its share; a few vanity plates (any 4-7 letters and digits). No photo is used.

This module needs only NumPy, OpenCV, Pillow and ONNX Runtime (the service's own environment), so the tests run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.recognition import imaging
from services.recognition.grammar import load_table
from services.recognition.second_reader import ALPHABET, HEIGHT, MARGIN_X, MARGIN_Y, PAD, WIDTH
from services.recognition.training.synth import DIGITS, LETTERS, photograph, render_plate

SLOTS = 10  # the model's fixed number of character slots (pads after the last character)
VANITY = 0.05  # share of vanity plates (any letters and digits) among the samples


class _Serials:
    """Serial numbers drawn from the state format tables."""

    def __init__(self) -> None:
        states, boost = load_table()
        self.formats: list[str] = []
        weights: list[float] = []
        for code, state in states.items():
            vehicles = state.vehicles * (boost if code == "MN" else 1.0)
            for fmt, share in state.formats.items():
                self.formats.append(fmt)
                weights.append(vehicles * share)
        self.weights = np.array(weights) / sum(weights)

    def draw(self, rng: np.random.Generator) -> str:
        if rng.random() < VANITY:
            pool = LETTERS + DIGITS
            return "".join(pool[rng.integers(len(pool))] for _ in range(int(rng.integers(4, 8))))
        fmt = self.formats[rng.choice(len(self.formats), p=self.weights)]
        return "".join(DIGITS[rng.integers(10)] if k == "D" else LETTERS[rng.integers(len(LETTERS))] for k in fmt)


_serials: _Serials | None = None


def serial(rng: np.random.Generator) -> str:
    global _serials
    if _serials is None:
        _serials = _Serials()
    return _serials.draw(rng)


def whole_plate_crop(photo: np.ndarray, number: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The number's quad (jittered like a detector's) grown to a whole plate as at run time, at 64×128 (BGR)."""
    w, h = imaging.quad_size(number)
    jitter = rng.normal(0, 1, (4, 2)) * [0.03 * w, 0.08 * h]
    quad = number + jitter.astype(np.float32)
    qw, qh = imaging.quad_size(quad)
    my = MARGIN_Y * rng.uniform(0.7, 1.3)  # the margin varies a little: at run time the number's box does
    mx = MARGIN_X * rng.uniform(0.7, 1.3) * qw / max(qh, 1.0)
    crop = imaging.crop_line(photo, quad, margin_x=mx, margin_y=my, height=HEIGHT)
    return cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def font_strip(path: Path | None) -> Any:
    """A serial drawer with a TrueType font (Pillow's own built-in one for None), condensed like plate fonts, for
    `render_plate`."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), 150) if path else ImageFont.load_default(150)

    def draw(text: str, rng: np.random.Generator, ink: tuple[int, ...], paper: tuple[int, ...]) -> np.ndarray:
        spaced = text if rng.random() < 0.6 else text[: len(text) // 2] + " " + text[len(text) // 2 :]
        left, top, right, bottom = font.getbbox(spaced)
        image = Image.new("RGB", (right - left + 40, bottom - top + 40), paper)
        ImageDraw.Draw(image).text((20 - left, 20 - top), spaced, font=font, fill=ink)
        strip = np.asarray(image)
        condense = rng.uniform(0.55, 0.9)
        return cv2.resize(strip, (max(8, int(strip.shape[1] * condense)), strip.shape[0]), interpolation=cv2.INTER_AREA)

    return draw


def sample(rng: np.random.Generator, fonts: tuple[Any, ...] = ()) -> tuple[np.ndarray, str]:
    """One training crop (64×128 BGR) and its label (no letter O is drawn: labels use 0, as our plates do); with
    `fonts` (TrueType drawers), half the serials are drawn with one of them."""
    text = serial(rng)
    strip = fonts[int(rng.integers(len(fonts)))] if fonts and rng.random() < 0.5 else None
    plate, quad = render_plate(text, rng, strip)
    photo, number = photograph(plate, quad, rng)
    return whole_plate_crop(photo, number, rng), text


def slots(text: str) -> np.ndarray:
    """A label as the model's slot targets: each character's index in ALPHABET, then pads to SLOTS."""
    padded = text + PAD * (SLOTS - len(text))
    return np.array([ALPHABET.index(ch) for ch in padded], np.int64)


def make(count: int, seed: int, fonts: tuple[Path | None, ...] = ()) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`count` samples drawn from `seed`: crops as the model takes them (uint8 NHWC RGB), slot targets, labels."""
    rng = np.random.default_rng(seed)
    drawers = tuple(font_strip(f) for f in fonts)
    images = np.empty((count, HEIGHT, WIDTH, 3), np.uint8)
    targets = np.empty((count, SLOTS), np.int64)
    labels = []
    for i in range(count):
        crop, text = sample(rng, drawers)
        images[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        targets[i] = slots(text)
        labels.append(text)
    return images, targets, labels


def check_signature(path: Path) -> None:
    """Raise ValueError unless the ONNX file at `path` takes what the shipped model takes (uint8 N×64×128×3 named
    `input`) and answers what it answers (`plate` N×10×37 probabilities, `region` N×66): `second_reader` and the
    fast-plate-ocr package read it the same way."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.type, list(i.shape[1:])) for i in session.get_inputs()]
    if inputs != [("input", "tensor(uint8)", [HEIGHT, WIDTH, 3])]:
        raise ValueError(f"{path.name}: inputs {inputs}")
    names = [o.name for o in session.get_outputs()]
    if names != ["plate", "region"]:
        raise ValueError(f"{path.name}: outputs {names}")
    batch = np.zeros((2, HEIGHT, WIDTH, 3), np.uint8)
    plate, region = session.run(None, {"input": batch})
    if plate.shape != (2, SLOTS, len(ALPHABET)) or region.shape != (2, 66):
        raise ValueError(f"{path.name}: output shapes {plate.shape} {region.shape}")
    if not np.allclose(plate.sum(axis=-1), 1.0, atol=1e-3) or not np.allclose(region.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(f"{path.name}: outputs are not probabilities")

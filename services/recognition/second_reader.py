"""The second reader: fast-plate-ocr's global plate recognizer (CCT-XS v2, MIT), independent of PP-OCR.

It reads a whole plate's crop (64×128 RGB, squeezed) into up to 10 slots over `0-9A-Z_` (`_` pads), and names the
plate's region. It was trained on whole-plate boxes, so it is given the number's box with a whole plate's margin
(`plate_crop`: one number-height above and below, a quarter of the width each side; measured on our crops: 81 %
exact against 72 % cut tight to the number, issue 27).

Run on ONNX Runtime directly rather than through the `fast-plate-ocr` package: the model is one small graph with a
fixed pre-processing (resize, uint8 NHWC), its package would add a dependency (and its own ONNX Runtime pin) for ten
lines of code, and running the session ourselves lets it share the engine's thread and spinning settings.

The weights ship in `models/fast_plate_ocr/` with their LICENSE (THIRD_PARTY_NOTICES.md); their SHA-256 is checked
when the reader is built, so a swapped or damaged file refuses to start rather than reading plates differently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from services.recognition import imaging

MODEL_DIR = Path(__file__).parent / "models" / "fast_plate_ocr"
WEIGHTS = MODEL_DIR / "cct_xs_v2_global.onnx"
# The upstream release asset's sum (models/fast_plate_ocr/LICENSE, THIRD_PARTY_NOTICES.md).
WEIGHTS_SHA256 = "8031afb5fdc6b4d80462c9d542f1284ebd2cfddf5dbacd62609848d7e2855f44"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
PAD = "_"
HEIGHT, WIDTH = 64, 128
# A whole plate around the number's box: this many number-heights above and below, this share of its width each side.
MARGIN_Y, MARGIN_X = 1.0, 0.25


class WeightsMismatch(RuntimeError):
    """The model file is not the one the project ships (its SHA-256 differs): the service refuses to start."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path = WEIGHTS, expected: str = WEIGHTS_SHA256) -> bytes:
    """The model's bytes once their SHA-256 is the expected one; WeightsMismatch otherwise (or if it is missing)."""
    if not path.is_file():
        raise WeightsMismatch(f"second reader's weights missing: {path}")
    data = path.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != expected:
        raise WeightsMismatch(f"second reader's weights {path.name}: SHA-256 {found}, expected {expected}")
    return data


@dataclass(frozen=True)
class SlotReading:
    """One crop read: the text (pads dropped, O written 0 as on our plates), each character's probability, and the
    per-slot probabilities over ALPHABET (10 × 37) to score another reader's text with."""

    text: str
    char_confidences: list[float]
    probs: np.ndarray
    us: float | None = None  # the region head's probability that this is a United States plate

    @property
    def confidence(self) -> float:
        """Geometric mean of the slots' probabilities, the pads' included (a dropped or extra character shows)."""
        top = self.probs.max(axis=1)
        return float(np.exp(np.log(np.clip(top, 1e-9, 1.0)).mean()))

    def likelihood(self, text: str) -> float:
        """How likely these slots read `text` (geometric mean per slot, pads included); 0 if it is too long."""
        slots = self.probs.shape[0]
        if len(text) > slots:
            return 0.0
        padded = text + PAD * (slots - len(text))
        p = []
        for i, ch in enumerate(padded):
            q = self.probs[i, ALPHABET.index(ch)] if ch in ALPHABET else 0.0
            if ch == "0":  # a round glyph: our plates write it 0, the model may say O
                q = max(q, self.probs[i, ALPHABET.index("O")])
            p.append(q)
        return float(np.exp(np.log(np.clip(np.array(p), 1e-9, 1.0)).mean()))


def plate_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The whole plate around a number's quadrilateral, rectified, at the model's input size (BGR)."""
    _, h = imaging.quad_size(quad)
    w, _ = imaging.quad_size(quad)
    # crop_line's margins are fractions of the line's height.
    crop = imaging.crop_line(image, quad, margin_x=MARGIN_X * w / max(h, 1.0), margin_y=MARGIN_Y, height=HEIGHT)
    return cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


# A second, closer cut (this many number-heights all round), read only where the two readers disagree on the best
# plate: it read 84.7 % of the dev photos exactly against the whole plate's 83.8 %, on partly other photos.
NEAR_MARGIN = 0.6


def near_crop(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    crop = imaging.crop_line(image, quad, margin_x=NEAR_MARGIN, margin_y=NEAR_MARGIN, height=HEIGHT)
    return cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)


def decode_slots(probs: np.ndarray) -> SlotReading:
    best = probs.argmax(axis=1)
    chars, confs = [], []
    for i, k in enumerate(best):
        ch = ALPHABET[int(k)]
        if ch == PAD:
            continue
        chars.append(ch)
        confs.append(float(probs[i, k]))
    text = "".join(chars)
    if any(ch.isdigit() for ch in text):  # as our decoder does: a round character on a plate with digits is 0
        text = text.replace("O", "0")
    return SlotReading(text, confs, probs)


def _regions() -> list[str]:
    """The region head's classes, in order, from the model's plate config (a flow list under `plate_regions`)."""
    text = (MODEL_DIR / "cct_xs_v2_global_plate_config.yaml").read_text()
    block = text[text.index("plate_regions:") :]
    block = block[block.index("[") + 1 : block.index("]")]
    return [name.strip().strip("'\"") for name in block.split(",") if name.strip()]


class PlateReader:
    """The second reader's ONNX session, built once per process from checked weights."""

    def __init__(self, path: Path = WEIGHTS, threads: int = 1, expected: str = WEIGHTS_SHA256) -> None:
        import onnxruntime as ort

        model = verify(path, expected)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Spinning threads burn CPU on a shared machine (engine._use_spinning): off.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        names = [o.name for o in self._session.get_outputs()]
        shapes = [o.shape for o in self._session.get_outputs()]
        # The slots' output is (N, 10, 37) (or flat N × 370); the other one names the plate's region.
        self._slots = next((i for i, s in enumerate(shapes) if len(s) == 3 or (len(s) == 2 and s[-1] == 370)), 0)
        self._names = names
        regions = _regions()
        self._us = regions.index("United States") if "United States" in regions else None

    def read(self, crops: list[np.ndarray]) -> list[SlotReading]:
        """Each crop (BGR, already `plate_crop`ped or any size: it is squeezed to 64×128) read."""
        if not crops:
            return []
        batch = np.stack(
            [
                cv2.cvtColor(c if c.shape[:2] == (HEIGHT, WIDTH) else cv2.resize(c, (WIDTH, HEIGHT)), cv2.COLOR_BGR2RGB)
                for c in crops
            ]
        ).astype(np.uint8)
        outputs = self._session.run(None, {self._input: batch})
        slots = np.asarray(outputs[self._slots]).reshape(len(crops), -1, len(ALPHABET))
        regions = np.asarray(outputs[1 - self._slots]) if len(outputs) > 1 else None
        out = []
        for i in range(len(crops)):
            reading = decode_slots(slots[i])
            if regions is not None and self._us is not None:
                reading = replace(reading, us=float(regions[i, self._us]))
            out.append(reading)
        return out

    def read_regions(self, image: np.ndarray, quads: list[np.ndarray]) -> list[SlotReading]:
        return self.read([plate_crop(image, q) for q in quads])

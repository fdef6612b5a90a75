"""The fast plate localizer (rows of character blobs) and the pipeline's fast path built on it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from services.recognition import locating
from services.recognition.decoding import Decoded
from services.recognition.engine import get_engine
from services.recognition.locating import plate_rows
from services.recognition.pipeline import Options, _Line, _unsure_best, recognize_image
from shared.plates import state_in_text
from tests.recognition.render import plate_image, scene_without_plate


def _inside(box: tuple[float, float, float, float], x0: float, y0: float, x1: float, y1: float) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return x0 <= cx <= x1 and y0 <= cy <= y1


def test_the_plate_number_is_a_row_of_blobs() -> None:
    # A 300 px plate centred in a 960 x 640 photo: x 330-630, y 352-502, its number in the lower two thirds.
    rows = plate_rows(plate_image("7KTR352"))
    number = [r for r in rows if _inside(r.box, 330, 400, 630, 502)]
    assert number, rows
    assert 6 <= number[0].blobs <= 8
    # The state name above it is a row too, but of shorter blobs.
    names = [r for r in rows if _inside(r.box, 330, 352, 630, 400)]
    assert all(r.height < number[0].height for r in names)


def test_no_rows_in_a_scene_without_text() -> None:
    assert plate_rows(scene_without_plate()) == []


class _CountingEngine:
    """The real engine, counting detector calls on the whole photo (its size) to tell the two paths apart."""

    def __init__(self, photo: np.ndarray) -> None:
        self._engine: Any = get_engine()
        self.charset = self._engine.charset
        self._shape = photo.shape
        self.whole_photo_detections = 0

    def detect(self, image: np.ndarray, max_side: int = 960) -> Any:
        if image.shape == self._shape:
            self.whole_photo_detections += 1
        return self._engine.detect(image, max_side)

    def recognize(self, lines: list[np.ndarray]) -> Any:
        return self._engine.recognize(lines)


def test_a_sure_plate_row_skips_the_detector_and_reads_the_state() -> None:
    image = plate_image("KXR482", angle=8.0)
    engine = _CountingEngine(image)
    best = recognize_image(engine, image, Options(locate=5)).plates[0]
    assert (best.plate, best.state) == ("KXR482", "MN")
    assert engine.whole_photo_detections == 0
    # The box is the number's, in photo pixels.
    xs, ys = [x for x, _ in best.box], [y for _, y in best.box]
    assert 300 < min(xs) < 480 < max(xs) < 660 and 380 < min(ys) < 440 < max(ys) < 520


def test_digits_alone_go_to_the_detector() -> None:
    # Seven digits read surely are more often a phone or fleet number than a plate: not enough to stop searching.
    image = plate_image("5550134", state=None)
    engine = _CountingEngine(image)
    recognize_image(engine, image, Options(locate=5, detect_sides=(640,)))
    assert engine.whole_photo_detections == 1
    # Without the localizer the detector is the only path.
    engine = _CountingEngine(image)
    recognize_image(engine, plate_image("KXR482"), Options(locate=0, detect_sides=(640,)))
    assert engine.whole_photo_detections == 1


def test_a_finer_pass_only_when_the_coarse_one_found_no_plate_line() -> None:
    # Digits alone: the localizer is not sure and the 640 px pass finds the line but never settles on it.
    image = plate_image("5550134", state=None)
    engine = _CountingEngine(image)
    recognize_image(engine, image, Options(locate=5, detect_sides=(640, 1024)))
    assert engine.whole_photo_detections == 1
    engine = _CountingEngine(image)
    recognize_image(engine, image, Options(locate=5, detect_sides=(640, 1024), fine_pass="unsettled"))
    assert engine.whole_photo_detections == 2
    # No plate-shaped line at 640 px: the finer pass looks again.
    scene = scene_without_plate()
    engine = _CountingEngine(scene)
    recognize_image(engine, scene, Options(locate=5, detect_sides=(640, 1024)))
    assert engine.whole_photo_detections == 2


def _reference_rows(image: np.ndarray, limit: int) -> list[locating.Row]:
    """`plate_rows` with OpenCV's own adaptive threshold and default connected components (what the faster
    equivalents in `locating` replace)."""
    scale = min(1.0, locating.MAX_SIDE / max(image.shape[:2]))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    found = []
    for offset in locating.OFFSETS:
        binary = cv2.adaptiveThreshold(
            gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, locating.BLOCK, offset
        )
        count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        x, y, w, h, area = stats[1:count].T
        fill = area / np.maximum(w * h, 1)
        keep = (h >= locating.MIN_HEIGHT) & (h <= locating.MAX_HEIGHT) & (w >= 2) & (w <= locating.MAX_WIDTH * h)
        blobs = stats[1:count][keep & (fill >= 0.15) & (fill <= 0.9), :4]
        found += [locating._row(r, scale) for r in locating._rows(blobs[np.argsort(blobs[:, 0], kind="stable")])]
    found.sort(key=lambda r: r.score, reverse=True)
    kept: list[locating.Row] = []
    for row in found:
        cx, cy = (row.box[0] + row.box[2]) / 2, (row.box[1] + row.box[3]) / 2
        if not any(k.box[0] <= cx <= k.box[2] and k.box[1] <= cy <= k.box[3] for k in kept):
            kept.append(row)
    return kept[:limit]


def test_rows_as_with_opencvs_own_threshold_and_components() -> None:
    for image in (plate_image("7KTR352"), plate_image("KXR482", size=(1280, 720), plate_width=140, seed=1)):
        noisy = cv2.add(image, np.random.default_rng(0).integers(0, 40, image.shape, dtype=np.uint8))
        for photo in (image, noisy):
            assert plate_rows(photo, 15) == _reference_rows(photo, 15)


def test_state_named_among_other_words() -> None:
    assert state_in_text("MINNESOTA") == "MN"
    assert state_in_text("2027 MINNESOTA 10") == "MN"
    assert state_in_text("WEST VIRGINIA") == "WV"  # not Virginia
    assert state_in_text("EXPLORE") is None


def test_touching_characters_stay_in_the_row() -> None:
    # A small plate in bold type: K and X touch and make one wide blob. The row must still span them, or its
    # reading is a confident, well-formed and wrong shorter plate (`XR482`).
    image = plate_image("KXR482", size=(1280, 720), plate_width=140, seed=1)
    engine = _CountingEngine(image)
    best = recognize_image(engine, image, Options(locate=5)).plates[0]
    assert best.plate == "KXR482"
    assert engine.whole_photo_detections == 0


def test_two_vehicles_two_plates() -> None:
    photo = np.hstack([plate_image("KXR482", seed=1), plate_image("7HTW519", seed=2)])
    engine = _CountingEngine(photo)
    plates = [p.plate for p in recognize_image(engine, photo, Options(locate=5)).plates]
    assert sorted(plates) == ["7HTW519", "KXR482"]
    assert engine.whole_photo_detections == 0


class _BlindDetector(_CountingEngine):
    """The real recognizer, with a text detector that finds nothing on the whole photo (a plate it cannot see)."""

    def detect(self, image: np.ndarray, max_side: int = 960) -> Any:
        if image.shape == self._shape:
            self.whole_photo_detections += 1
            return []
        return self._engine.detect(image, max_side)


def test_an_unsure_row_is_the_reading_when_nothing_else_is_read() -> None:
    # No row is sure enough to end the search (nothing can be, here) and the detector finds nothing: the likeliest
    # row's reading is still the answer, with its alternatives, rather than no reading for the hot list.
    image = plate_image("KXR482")
    never_sure = Options(locate=5, locate_sure=1.01, locate_sure_unlisted=1.01, detect_sides=(640,))
    engine = _BlindDetector(image)
    plates = recognize_image(engine, image, never_sure).plates
    assert engine.whole_photo_detections == 1
    assert [p.plate for p in plates] == ["KXR482"]
    xs = [x for x, _ in plates[0].box]
    assert 300 < min(xs) < 480 < max(xs) < 660  # the row's characters, in photo pixels
    # Switched off: no reading, as before.
    assert recognize_image(_BlindDetector(image), image, replace(never_sure, locate_fallback=False)).plates == []
    # A photo with no plate-like row still gets none.
    empty = scene_without_plate()
    assert recognize_image(_BlindDetector(empty), empty, never_sure).plates == []


def _row_read(text: str, confidence: float, height: float = 30.0) -> _Line:
    quad = np.array([[0, 0], [100, 0], [100, height], [0, height]], np.float32)
    return _Line(quad, 100.0, height, Decoded(text, text, [confidence] * len(text), [[] for _ in text]), text)


def test_the_unsure_reading_given_is_the_most_plate_like_and_not_noise() -> None:
    rows = [_row_read("SH0LR7X", 0.88), _row_read("1U", 0.9), _row_read("EXPIRES", 0.95), _row_read("AB12C", 0.6)]
    boxes = {id(r): r.quad for r in rows}
    best = _unsure_best(rows, boxes, 30.0, Options())
    assert best is not None and best[0].text == "SH0LR7X"  # too short, a sticker's word, a weaker plate lose
    assert _unsure_best(rows, boxes, 30.0, Options(locate_fallback=False)) is None
    noise = [_row_read("Q7XA", 0.3), _row_read("EXPIRES", 0.95)]
    assert _unsure_best(noise, {id(r): r.quad for r in noise}, 30.0, Options()) is None  # under the floor


def _rows_one_by_one(blobs: np.ndarray) -> list[np.ndarray]:
    """The rule as first written: each blob against its next neighbours by x, one pair at a time."""
    n = len(blobs)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    x, y, w, h = (blobs[:, k].astype(np.float64) for k in range(4))
    cy = y + h / 2
    for i in range(n):
        j = i + 1
        while j < n and x[j] <= x[i] + w[i] + locating.REACH * h[i]:
            if (
                abs(h[j] - h[i]) <= 0.2 * max(h[i], h[j])
                and abs(cy[j] - cy[i]) <= 0.25 * h[i]
                and x[j] >= x[i] + 0.5 * w[i]
            ):
                parent[root(j)] = root(i)
            j += 1
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [blobs[g] for g in groups.values() if locating.MIN_ROW <= len(g) <= locating.MAX_ROW]


def test_rows_compared_at_once_are_the_rows_compared_one_by_one(monkeypatch: Any) -> None:
    rng = np.random.default_rng(7)
    # Few pairs per step: the chunked comparison crosses many step boundaries.
    monkeypatch.setattr(locating, "PAIRS_PER_STEP", 50)
    for trial in range(20):
        n = int(rng.integers(0, 400))
        blobs = np.stack(
            [rng.integers(0, 1200, n), rng.integers(0, 700, n), rng.integers(2, 40, n), rng.integers(8, 40, n)], axis=1
        ).astype(np.int32)
        # Some plate-like rows among the specks: evenly spaced characters of one height.
        for r in range(trial % 4):
            chars = np.array([[100 + 30 * k, 80 * r + 50, 18, 28] for k in range(7)], np.int32)
            blobs = np.concatenate([blobs.reshape(-1, 4), chars])
        blobs = blobs[np.argsort(blobs[:, 0], kind="stable")]
        fast = locating._rows(blobs)
        slow = _rows_one_by_one(blobs)
        assert len(fast) == len(slow)
        assert all(np.array_equal(a, b) for a, b in zip(fast, slow, strict=True))

"""Plates proposed by their shape (proposals.py): a light rectangle of a plate's proportions is found without reading
its characters, and the second reader reads it as a whole plate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from services.recognition.pipeline import Options
from services.recognition.proposals import MIN_US, plate_boxes, plate_crop
from services.recognition.readings import PlateReading, Recognition
from services.recognition.second_opinion import read_candidates
from services.recognition.second_reader import PlateReader
from tests.recognition.render import plate_image, scene_without_plate


def _iou(quad: np.ndarray, box: tuple[float, float, float, float]) -> float:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    ix = max(0.0, min(x1, box[2]) - max(x0, box[0]))
    iy = max(0.0, min(y1, box[3]) - max(y0, box[1]))
    inter = ix * iy
    return inter / ((x1 - x0) * (y1 - y0) + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _drawn(plate_width: int, size: tuple[int, int] = (960, 640)) -> tuple[float, float, float, float]:
    """Where render.plate_image draws the plate."""
    x0, y0 = (size[0] - plate_width) // 2, int(size[1] * 0.55)
    return (x0, y0, x0 + plate_width, y0 + plate_width // 2)


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader()


@pytest.mark.parametrize(("text", "width", "blur"), [("KXR482", 300, 0.0), ("7HTW519", 160, 0.0), ("ABC1234", 200, 2)])
def test_the_plate_is_proposed_and_read(text: str, width: int, blur: float, reader: PlateReader) -> None:
    image = plate_image(text, plate_width=width, blur=blur)
    boxes = plate_boxes(image, 4)
    best = max(boxes, key=lambda q: _iou(q, _drawn(width)))
    assert _iou(best, _drawn(width)) >= 0.5
    (reading,) = reader.read([plate_crop(image, best)])
    assert reading.text == text


def test_proposals_are_distinct_and_bounded() -> None:
    image = plate_image("KXR482", plate_width=300)
    boxes = plate_boxes(image, 2)
    assert 1 <= len(boxes) <= 2
    assert all(q.shape == (4, 2) for q in boxes)
    assert all(_iou(a, (*b.min(axis=0), *b.max(axis=0))) < 0.5 for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_nothing_plate_like_is_read_as_a_plate_where_there_is_none(reader: PlateReader) -> None:
    image = scene_without_plate()
    readings = reader.read([plate_crop(image, q) for q in plate_boxes(image, 8)])
    assert not [r for r in readings if r.text and r.us is not None and r.us >= MIN_US]


def _recognition(plate: str, box: list[list[float]]) -> Recognition:
    reading = PlateReading(plate, plate, 0.9, box, [0.9] * len(plate), [])
    return Recognition(960, 640, plates=[reading])


def _number_box(image: np.ndarray) -> list[list[float]]:
    """The drawn number's box (dark pixels in the plate's lower part), as the first reader reports it."""
    x0, y0, x1, y1 = _drawn(300)
    ys, xs = np.nonzero(image[y0 + 45 : y1 - 10, x0 + 6 : x1 - 6].min(axis=2) < 60)
    return [[x0 + 6 + xs.min(), y0 + 45 + ys.min()], [x0 + 6 + xs.max(), y0 + 45 + ys.min()],
            [x0 + 6 + xs.max(), y0 + 45 + ys.max()], [x0 + 6 + xs.min(), y0 + 45 + ys.max()]]  # fmt: skip


def test_proposals_are_read_only_where_the_readers_disagree(reader: PlateReader) -> None:
    image = plate_image("KXR482", plate_width=300)
    # The two readers agree on the first reader's best plate: one crop read, no proposal.
    agreed = _recognition("KXR482", _number_box(image))
    regions, slots = read_candidates(reader, image, agreed, Options())
    assert [s.text for s in slots] == ["KXR482"] and len(regions) == 1
    # The first reader read something else on a patch of the car: the best plate is read closer, then the plates
    # proposed by shape; a proposal's reading is kept only where the region head calls it a US plate (the drawn
    # plate, in OpenCV's font, it does not), every kept reading beside its region.
    wrong = _recognition("ZZZ999", [[50.0, 50.0], [150.0, 50.0], [150.0, 80.0], [50.0, 80.0]])
    without = read_candidates(reader, image, wrong, replace(Options(), proposals=0))
    regions, slots = read_candidates(reader, image, wrong, Options())
    assert len(regions) == len(slots) >= len(without[1])
    extra = slots[len(without[1]) :]
    assert all(s.us is None or s.us >= MIN_US for s in extra)
    read_all = reader.read([plate_crop(image, q) for q in plate_boxes(image, Options().proposals)])
    assert "KXR482" in [r.text for r in read_all]  # proposed and read; left out by the region head alone

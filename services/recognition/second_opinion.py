"""The second reader on a photo's candidate regions, and the arbitrated answer put on the pipeline's readings.

The regions are the first reader's plates (their number's box), then every localizer row and detector line the
pipeline considered (`Recognition.regions`), at most `Options.second_regions` of them, each read once with a whole
plate's margin; the others only when the second reader does not agree on the best plate, and where none of its
readings is the first reader's best, plates proposed by their shape (proposals.py). The verdict
(arbitration.py) becomes the first plate: a first-reader reading moved to the front, or
the second reader's own reading of its region when it won.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from services.recognition import imaging, proposals
from services.recognition.arbitration import Reading, Verdict, arbitrate
from services.recognition.hitrate import INGEST_MAX_ALTERNATIVES, hit_value
from services.recognition.readings import PlateReading, Recognition
from services.recognition.second_reader import PlateReader, SlotReading, near_crop, plate_crop


class SecondOptions(Protocol):
    """What the second reader's step needs of the pipeline's `Options`."""

    second_regions: int
    proposals: int
    vanity: float
    alternatives: int
    pair_min_value: float


_reader: PlateReader | None = None
_lock = threading.Lock()


def get_reader() -> PlateReader:
    """The process's second reader, its weights checked on first use (the service builds it at start-up)."""
    global _reader
    if _reader is None:
        with _lock:
            if _reader is None:
                _reader = PlateReader()
    return _reader


def use_reader(reader: PlateReader) -> None:
    """The process's second reader from now on (the service builds it at start-up, from its setting's weights)."""
    global _reader
    _reader = reader


def _center(quad: np.ndarray) -> np.ndarray:
    return np.asarray(quad, np.float32).reshape(4, 2).mean(axis=0)


def distinct_regions(quads: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """`quads` in order, leaving out one whose centre lies inside a region already kept (the same line found twice)."""
    kept: list[np.ndarray] = []
    for quad in quads:
        q = np.asarray(quad, np.float32).reshape(4, 2)
        cx, cy = _center(q)
        if any(k[:, 0].min() <= cx <= k[:, 0].max() and k[:, 1].min() <= cy <= k[:, 1].max() for k in kept):
            continue
        kept.append(q)
        if len(kept) >= limit:
            break
    return kept


def first_readings(result: Recognition) -> list[Reading]:
    return [
        Reading("first", p.plate, p.confidence, alternatives=tuple(p.alternatives), rank=i)
        for i, p in enumerate(result.plates)
    ]


def second_readings(slots: list[SlotReading]) -> list[Reading]:
    # The region head's "United States" as plate evidence, halved at most: a US plate the head calls another
    # region is still read, a badge or a frame (region "Unknown", any) loses some of its weight.
    return [
        Reading("second", s.text, s.confidence, 0.5 + 0.5 * (s.us if s.us is not None else 1.0), slots=s, rank=i)
        for i, s in enumerate(slots)
    ]


def read_candidates(
    reader: PlateReader, image: np.ndarray, result: Recognition, options: SecondOptions
) -> tuple[list[np.ndarray], list[SlotReading]]:
    """The regions the second reader read and its readings of them, in the same order."""
    boxes = [np.asarray(p.box, np.float32) for p in result.plates] + list(result.regions)
    regions = distinct_regions(boxes, options.second_regions)
    # The first reader's best plate first: when the second reader agrees there (85 % of the dev photos) the other
    # regions cannot change the answer, and are not read (~4 ms of CPU each; docs/recognition-27.md).
    slots = reader.read_regions(image, regions[:1]) if regions else []
    if regions and not (result.plates and slots and slots[0].text == result.plates[0].plate):
        # They disagree: every other region, and the best one cut closer (`second_reader.near_crop`).
        slots += reader.read([*(plate_crop(image, q) for q in regions[1:]), near_crop(image, regions[0])])
        regions = [*regions, regions[0]]
    if options.proposals and not (result.plates and slots and result.plates[0].plate in {s.text for s in slots}):
        # Still no agreement on the best plate (or nothing read): plates proposed by their shape, not their
        # characters (proposals.py), each read by the second reader as a whole plate.
        boxes = proposals.plate_boxes(image, options.proposals)
        read = reader.read([proposals.plate_crop(image, q) for q in boxes])
        # A light rectangle is often a sticker, a sign or a tail light: kept only where the reader's region head
        # calls it a US plate (46 of the 48 right readings of a proposal on the dev photos, 13 of 39 wrong
        # ones, measured with the first version's three thresholds).
        kept = [(q, r) for q, r in zip(boxes, read, strict=True) if r.us is None or r.us >= proposals.MIN_US]
        slots += [r for _, r in kept]
        regions = [*regions, *(q for q, _ in kept)]
    return regions, slots


def apply_second_reader(
    image: np.ndarray, result: Recognition, options: SecondOptions, reader: PlateReader | None = None
) -> Verdict | None:
    """Read the candidate regions with the second reader and put the arbitrated answer first in `result.plates`."""
    reader = reader or get_reader()
    regions, slots = read_candidates(reader, image, result, options)
    first, second = first_readings(result), second_readings(slots)
    verdict = arbitrate(first, second, options.vanity, INGEST_MAX_ALTERNATIVES * 2)
    if verdict is None:
        return None
    seconds = {s.text for s in second if s.text}
    for plate in result.plates:
        plate.agreement = "both" if plate.plate in seconds else "one"
        plate.readings = {"first": plate.plate, "second": None}
    index = next((i for i, p in enumerate(result.plates) if p.plate == verdict.plate), None)
    if index is not None:
        chosen = result.plates.pop(index)
    else:
        region = next(i for i, s in enumerate(second) if s.text == verdict.plate)
        chosen = _from_second(slots[region], regions[region], result.plates[0] if result.plates else None)
    chosen.agreement = verdict.agreement
    chosen.readings = {"first": verdict.first, "second": verdict.second}
    chosen.confidence = round(verdict.confidence, 4)
    # What ingest sends to the hot list beside the answer: both readers' best alternatives (arbitration.py).
    # `alternatives` 0 (a fold whose false-hit budget allowed none) sends none from either reader.
    limit = INGEST_MAX_ALTERNATIVES if options.alternatives > 0 else 0
    chosen.alternatives = [
        (text, p) for text, p in verdict.alternatives if hit_value(text, p) >= options.pair_min_value
    ][:limit]
    result.plates.insert(0, chosen)
    return verdict


def _from_second(slots: SlotReading, quad: np.ndarray, beside: PlateReading | None) -> PlateReading:
    """The second reader's reading of a region as a plate reading (the state, if any, from the first reader's)."""
    return PlateReading(
        plate=slots.text,
        raw=slots.text,
        confidence=round(slots.confidence, 4),
        box=[[round(float(x), 1), round(float(y), 1)] for x, y in imaging.order_quad(quad)],
        char_confidences=[round(c, 4) for c in slots.char_confidences],
        alternatives=[],
        state=beside.state if beside else None,
        state_confidence=beside.state_confidence if beside else None,
    )

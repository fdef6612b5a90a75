"""From a photo to plate readings: detect text lines, crop and rectify them, read them, keep what is a plate.

Pure functions over an `OcrEngine`; the service runs them in a worker pool and `alpr eval-ocr` runs the same code.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from services.recognition import imaging, locating
from services.recognition.decoding import (
    Decoded,
    PlateDecoder,
    alternatives,
    apply_syntax,
    decode_with_prior,
    fits_format,
    key_alternatives,
)
from services.recognition.engine import OcrEngine, TextLine
from services.recognition.grammar import grammar
from services.recognition.readings import PlateReading, Recognition
from services.recognition.second_opinion import apply_second_reader
from shared.plates import is_non_plate_text, is_plate_text, normalize, state_from_text, state_in_text


@dataclass(frozen=True)
class Options:
    """Pipeline switches, so each improvement can be measured on and off (`alpr eval-ocr --stage`)."""

    plate_head: bool = False  # mix our plate head's scores in (README: trained, measured, not better on unseen photos)
    head_weight: float = 0.5  # the plate head's share when its scores and PP-OCR's are mixed
    plate_decoding: bool = True  # fold the recognizer's symbols onto the plate alphabet (else its raw reading)
    syntax: bool = True  # without `prior`: correct one character towards a common format (decoding.apply_syntax)
    variants: bool = False  # vote over crops/enhancements of the best line when it is not refined (README)
    max_lines: int = 6  # text lines read per detection pass, most plate-like first (each read costs ~10 ms)
    detect_sides: tuple[int, ...] = (640, 1024)  # detection passes, coarse to fine
    # When a finer pass runs: "empty", only when the coarser found no plate-shaped line at all; "unsettled", also when
    # its best reading is not a confident plate (docs/recognition-cpu.md: on the dev photos the finer pass changed
    # no exact read but where the coarser found nothing, and cost ~30 ms of CPU per photo elsewhere).
    fine_pass: Literal["empty", "unsettled"] = "empty"
    # Best lines read again from an upscaled crop of their own region (README: the measured gain). Was 3: with the
    # second reader in place the 2nd and 3rd refined lines changed no reading on the dev photos
    # (docs/recognition-27.md).
    refine: int = 1
    number_line: bool = True  # in a refined region, also read the row of character blobs alone (README)
    choose: bool = True  # order the refined readings by plate-likeness, not by the first ranking (README)
    refine_vote: bool = False  # vote over crops/enhancements inside each refined region too (README: a wash, slower)
    settle: bool = True  # refine the coarse pass's lines before deciding on a finer pass (README)
    refine_stop: float = 0.95  # stop refining further lines once one reads this surely in a common format (0: never)
    prior: bool = True  # beam-search decoding under the plate-format prior (grammar.py), instead of `syntax`
    vanity: float = 0.02  # the prior of a reading in no listed format (vanity, specialty): tuned per fold
    beam: int = 12  # readings kept by the beam search at each step
    best_path: bool = True  # a reading's probability: its likeliest alignment's (else the sum over alignments)
    alternatives: int = 5  # alternative readings returned (ingest sends them to hotlist): tuned per fold
    min_share: float = 0.0  # ... each worth at least this (probability per expected false hit): tuned per fold
    lookalike: float = 0.0  # ... a letter's look-alike (decoding.LOOKALIKES) offered at this share of its doubt
    unlisted: float = 1.0  # plate-likeness factor of a reading in no listed format (a line's plate evidence): tuned
    locate: int = 5  # rows of character blobs read first (locating.py); 0: straight to the text detector
    locate_first: int = 2  # ... of which this many are read first, the others only when none of those is sure
    locate_sure: float = 0.85  # ... a row's reading this sure, 5-8 characters in a listed format, ends the search
    locate_sure_unlisted: float = 0.97  # ... or this sure in no listed format (specialty and commercial plates)
    locate_pad: float = 0.7  # ... each row read with this margin left and right (of the characters' height)
    locate_fallback: bool = True  # ... when the detector finds no plate either, the likeliest row read, though unsure
    second: bool = True  # the second, plate-specific reader on the candidate regions, and arbitration (issue 27)
    second_regions: int = 6  # ... regions it reads at most (each ~3-9 ms of CPU), the first reader's plates first
    proposals: int = 4  # ... and where they still disagree, this many plates proposed by shape (proposals.py)
    pair_min_value: float = 0.1  # ... the least hit value of either reader's alternative sent on: tuned per fold


TUNED = Path(__file__).parent / "data" / "tuned.json"  # written by `python -m services.recognition.tuning`


def tuned_settings(path: Path = TUNED) -> dict[str, dict[str, Any]]:
    """Per fold ("A", "B") and for "all" photos: the settings chosen on them (empty: the defaults)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    return {k: dict(data.get(k, {}).get("options", {})) for k in ("A", "B", "all")}


def with_settings(options: Options, settings: dict[str, Any]) -> Options:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return replace(options, **values)


def served_options(detect_sides: tuple[int, ...]) -> Options:
    """What the service runs: the settings chosen on all labelled photos (their figure on photos not seen is the
    cross-fold one, docs/recognition-19.md)."""
    return with_settings(Options(detect_sides=detect_sides), tuned_settings()["all"])


@dataclass
class _Line:
    quad: np.ndarray
    width: float
    height: float
    decoded: Decoded
    text: str


# The least confidence of an unsure row's reading given when nothing else is read: below it (characters less likely
# than not, on geometric average) a reading is noise a hot list should not see. SH0R7X's row read at 0.88.
FALLBACK_MIN_CONFIDENCE = 0.5
STATE_ROWS = 15  # rows of blobs searched for a state name's, above or below the plate's number
REFINE_MARGIN = 0.15  # of the region's height, around the detected box
REFINE_MIN_HEIGHT = 128  # px: regions smaller than this are upscaled before detecting and reading again

_decoders: dict[int, PlateDecoder] = {}


def _decoder(engine: OcrEngine) -> PlateDecoder:
    key = id(engine)
    if key not in _decoders:
        _decoders[key] = PlateDecoder(engine.charset)
    return _decoders[key]


def _plain(decoded: Decoded) -> Decoded:
    """The recognizer's raw reading, normalized, as if there were no plate-aware decoding (for measuring it)."""
    text = normalize(decoded.raw)
    return Decoded(text, decoded.raw, [decoded.confidence or 0.5] * len(text), [[] for _ in text])


def _read(engine: OcrEngine, crops: list[np.ndarray], options: Options) -> list[Decoded]:
    decoder = _decoder(engine)
    head = options.plate_head
    results = [decoder.decode(s.probs, s.plate if head else None, options.head_weight) for s in engine.recognize(crops)]
    if not options.plate_decoding:
        return [_plain(d) for d in results]
    if options.prior:
        prior = grammar(None, options.vanity)
        return [decode_with_prior(d, prior, options.beam, options.best_path) for d in results]
    return [apply_syntax(d) for d in results] if options.syntax else results


def _fits(text: str, options: Options) -> bool:
    return grammar(None, options.vanity).fits(text) if options.prior else fits_format(text)


def _with_state(reading: PlateReading, options: Options) -> None:
    """Decode the reading again with the formats of the state read off the plate (once per state)."""
    if not options.prior or reading.decoded is None or not reading.state or reading.state_decoded == reading.state:
        return
    decoded = decode_with_prior(
        reading.decoded, grammar(reading.state, options.vanity), options.beam, options.best_path
    )
    reading.state_decoded = reading.state
    if not decoded.text:
        return
    reading.decoded = decoded
    reading.plate = decoded.text
    reading.confidence = round(decoded.confidence, 4)
    reading.char_confidences = [round(c, 4) for c in decoded.char_confidences]
    reading.alternatives = _alternatives(decoded, options)


def _alternatives(decoded: Decoded, options: Options) -> list[tuple[str, float]]:
    if options.prior:
        return key_alternatives(decoded, options.alternatives, options.min_share, options.lookalike)
    return alternatives(decoded, options.alternatives)


def _candidate_lines(lines: list[TextLine], image: np.ndarray, options: Options) -> list[tuple[TextLine, float, float]]:
    keep = []
    for line in lines:
        w, h = imaging.quad_size(line.quad)
        # A plate number is a short, wide line: skip specks, single glyphs and long sentences.
        if h < 6 or w < h * 1.2 or w > h * 9:
            continue
        keep.append((line, w, h))
    # Tall lines first, favouring the plate number's usual shape (about 2 to 5 times as wide as tall).
    keep.sort(key=lambda item: item[2] * (1.0 if 2 <= item[1] / item[2] <= 5.5 else 0.6), reverse=True)
    return keep[: options.max_lines]


def _vote(engine: OcrEngine, image: np.ndarray, line: _Line, options: Options) -> Decoded:
    """Read the line again from other crops and enhancements; the reading with the most confidence mass wins."""
    crops = [
        imaging.crop_line(image, line.quad, margin_x=0.02, margin_y=0.05),
        imaging.crop_line(image, line.quad, margin_x=0.15, margin_y=0.25),
        imaging.equalized(imaging.crop_line(image, line.quad)),
        imaging.sharpened(imaging.crop_line(image, line.quad)),
    ]
    readings = [line.decoded, *_read(engine, crops, options)]
    mass: dict[str, float] = defaultdict(float)
    best: dict[str, Decoded] = {}
    for reading in readings:
        if not reading.text or not is_plate_text(reading.text):
            continue
        mass[reading.text] += reading.confidence
        if reading.text not in best or reading.confidence > best[reading.text].confidence:
            best[reading.text] = reading
    if not mass:
        return line.decoded
    return best[max(mass, key=lambda text: mass[text])]


def _state_near(lines: list[_Line], plate: _Line) -> tuple[str | None, float | None]:
    """A state name read on a line close to the plate number (above or below it, within two plate heights)."""
    center = plate.quad.mean(axis=0)
    best: tuple[str | None, float | None] = (None, None)
    for other in lines:
        if other is plate:
            continue
        state = state_from_text(other.decoded.raw)
        if state is None:
            continue
        distance = np.linalg.norm(other.quad.mean(axis=0) - center)
        if distance <= 2.5 * plate.height + plate.width / 2 and (best[1] or 0) < other.decoded.confidence:
            best = (state, round(other.decoded.confidence, 4))
    return best


def _score(line: _Line, tallest: float) -> float:
    """Best first: confident, plate-length readings with digits, on tall lines (the plate number is the plate's
    tallest text). A no-digit (vanity) reading ranks below any reading with digits: shop signs, model badges and
    fleet names are words."""
    length_fit = 1.0 if 5 <= len(line.text) <= 8 else 0.6
    digit_fit = 1.0 if any(ch.isdigit() for ch in line.text) else 0.3
    return line.decoded.confidence * length_fit * digit_fit * (0.5 + 0.5 * line.height / tallest)


def plate_likeness(text: str, confidence: float, height: float, tallest: float) -> float:
    """How much a reading looks like a plate number rather than other text near it: 5-8 characters mixing
    letters and digits (a run of digits alone is far more often a phone number, a date or a fleet number: US
    plates with digits only are rare), read confidently, on one of the tallest lines."""
    length_fit = 1.0 if 5 <= len(text) <= 8 else 0.5
    digits = sum(ch.isdigit() for ch in text)
    mix_fit = 1.0 if 0 < digits < len(text) else (0.6 if digits else 0.3)
    return confidence * length_fit * mix_fit * (0.5 + 0.5 * min(1.0, height / tallest))


def _read_lines(
    engine: OcrEngine,
    image: np.ndarray,
    max_side: int,
    options: Options,
    clock: dict[str, float],
    regions: list[np.ndarray] | None = None,
) -> list[_Line]:
    start = time.perf_counter()
    detected = engine.detect(image, max_side)
    clock["locate"] += time.perf_counter() - start
    candidates = _candidate_lines(detected, image, options)
    if regions is not None:
        regions.extend(line.quad for line, _, _ in candidates)
    crops = [imaging.crop_line(image, line.quad) for line, _, _ in candidates]
    decoded = _read(engine, crops, options)
    return [_Line(line.quad, w, h, d, d.text) for (line, w, h), d in zip(candidates, decoded, strict=True) if d.text]


def _confident(lines: list[_Line], options: Options) -> bool:
    """A reading good enough to stop searching at a finer scale. With `choose`, digits alone are not enough: a
    phone number or a fleet number reads confidently and would keep the finer pass from finding the plate."""
    return any(
        5 <= len(ln.text) <= 8
        and any(ch.isdigit() for ch in ln.text)
        and (not options.choose or any(ch.isalpha() for ch in ln.text))
        and ln.decoded.confidence >= 0.9
        for ln in lines
        if is_plate_text(ln.text)
    )


def _refine(engine: OcrEngine, image: np.ndarray, line: _Line, options: Options) -> PlateReading | None:
    """Read the plate again from its own region, upscaled: at photo scale the detector often draws one box over the
    whole plate (number, state name, stickers) and the recognizer then reads only part of it; on an upscaled crop
    of that box the detector separates the number line, and the crop cuts no character at its ends."""
    x0, y0 = line.quad.min(axis=0)
    x1, y1 = line.quad.max(axis=0)
    margin = REFINE_MARGIN * (y1 - y0)
    height, width = image.shape[:2]
    left, top = int(max(0, x0 - margin)), int(max(0, y0 - margin))
    right, bottom = int(min(width, x1 + margin)), int(min(height, y1 + margin))
    region = image[top:bottom, left:right]
    if region.shape[0] < 4 or region.shape[1] < 4:
        return None
    scale = max(1.0, REFINE_MIN_HEIGHT / region.shape[0])
    if scale > 1.0:
        region = imaging.upscaled(region, scale)
    inner = replace(
        options, refine=0, detect_sides=(max(region.shape[:2]),), variants=options.refine_vote, locate=0, second=False
    )
    found = recognize_image(engine, region, inner).plates
    if options.number_line:
        alone = _number_line_reading(engine, region, options)
        if alone is not None and (not found or _longer_or_surer(alone, found[0], line.height)):
            found.insert(0, alone)
    if not found:
        return None
    best = found[0]
    best.box = [[round(x / scale + left, 1), round(y / scale + top, 1)] for x, y in best.box]
    return best


def _longer_or_surer(alone: PlateReading, found: PlateReading, height: float) -> bool:
    """The number line read alone wins when it keeps every character and looks more like a plate: the detector's
    line lost characters to a box over the whole plate. A shorter reading alone does not win: the blob row can miss
    a character that touches the frame or merges with it (measured: `UJ5E1A` read `J5E1A`)."""
    return len(alone.plate) >= len(found.plate) and plate_likeness(
        alone.plate, alone.confidence, height, height
    ) > plate_likeness(found.plate, found.confidence, height, height)


def _number_line_reading(engine: OcrEngine, region: np.ndarray, options: Options) -> PlateReading | None:
    box = imaging.number_line(region)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    decoded = _read(engine, [imaging.crop_line(region, quad, margin_x=0.0, margin_y=0.0)], options)[0]
    if not decoded.text or not is_plate_text(decoded.text) or is_non_plate_text(decoded.raw):
        return None
    line = _Line(quad, float(x1 - x0), float(y1 - y0), decoded, decoded.text)
    return _reading(engine, region, line, options, vote=False)


def _reading(engine: OcrEngine, image: np.ndarray, line: _Line, options: Options, vote: bool) -> PlateReading:
    reading = _vote(engine, image, line, options) if vote else line.decoded
    return PlateReading(
        plate=reading.text,
        raw=reading.raw,
        confidence=round(reading.confidence, 4),
        box=[[round(float(x), 1), round(float(y), 1)] for x, y in imaging.order_quad(line.quad)],
        char_confidences=[round(c, 4) for c in reading.char_confidences],
        alternatives=_alternatives(reading, options),
        decoded=reading,
    )


def _ranked(
    engine: OcrEngine,
    image: np.ndarray,
    lines: list[_Line],
    options: Options,
    refined: dict[int, PlateReading | None],
) -> list[tuple[_Line, PlateReading]]:
    """The plate readings of `lines`, best first: plate-shaped lines ranked, the best refined (each line once: a
    finer detection pass reuses `refined`), then ordered by plate-likeness."""
    plates = [ln for ln in lines if is_plate_text(ln.text) and not is_non_plate_text(ln.decoded.raw)]
    tallest = max((ln.height for ln in plates), default=1.0)
    plates.sort(key=lambda ln: _score(ln, tallest), reverse=True)
    readings: list[tuple[_Line, PlateReading]] = []
    sure = False
    for rank, ln in enumerate(plates):
        better = None
        if rank < options.refine and not sure:
            if id(ln) not in refined:
                refined[id(ln)] = _refine(engine, image, ln, options)
            better = refined[id(ln)]
        # A refined reading that is sure and well-formed ends the search: the lines after it are read, not refined.
        sure = sure or (
            better is not None and 0 < options.refine_stop <= better.confidence and _fits(better.plate, options)
        )
        readings.append((ln, better or _reading(engine, image, ln, options, options.variants and rank == 0)))
    if options.choose and options.refine > 1:
        # The first ranking used the photo-scale reading; the refined ones are better evidence of which line is
        # the plate (a phone number or a sign reads just as confidently as the plate at photo scale).
        head = readings[: options.refine]
        head.sort(
            key=lambda item: (
                plate_likeness(item[1].plate, item[1].confidence, item[0].height, tallest)
                * (1.0 if _fits(item[1].plate, options) else options.unlisted)
            ),
            reverse=True,
        )
        readings[: options.refine] = head
    return readings


def _settled(readings: list[tuple[_Line, PlateReading]]) -> bool:
    """The best reading is a confident plate (5-8 characters, letters and digits): no finer detection pass."""
    if not readings:
        return False
    text, confidence = readings[0][1].plate, readings[0][1].confidence
    mixed = any(ch.isdigit() for ch in text) and any(ch.isalpha() for ch in text)
    return 5 <= len(text) <= 8 and mixed and confidence >= 0.9


def _located(
    engine: OcrEngine,
    image: np.ndarray,
    options: Options,
    clock: dict[str, float],
    regions: list[np.ndarray] | None = None,
) -> tuple[list[PlateReading], tuple[_Line, np.ndarray] | None]:
    """The fast path: read the likeliest rows of character blobs directly and keep the readings that are sure
    plates, best first; none sends the photo to the text detector. Beside them: the likeliest plate-like row read
    though unsure (the answer when the detector finds no plate either)."""
    start = time.perf_counter()
    # More rows than are read: a state name's row of small letters often ranks below the first few.
    found = locating.plate_rows(image, max(options.locate, STATE_ROWS))
    clock["locate"] += time.perf_counter() - start
    rows = found[: options.locate]
    if not rows:
        return [], None
    width = image.shape[1]
    lines: list[_Line] = []
    boxes: dict[int, np.ndarray] = {}  # each line's characters alone: the box a reading reports
    for row in rows:
        # Along the row's own slope, so a tilted plate is read level.
        x0, x1 = row.box[0], row.box[2]
        pad_x, half = options.locate_pad * row.height, 0.7 * row.height
        quad = row.quad(max(0.0, x0 - pad_x), min(float(width), x1 + pad_x), half, half)
        lines.append(_Line(quad, float(quad[1, 0] - quad[0, 0]), 2 * half, Decoded("", "", [], []), ""))
        boxes[id(lines[-1])] = row.quad(x0, x1, 0.5 * row.height, 0.5 * row.height)
        if regions is not None:
            regions.append(boxes[id(lines[-1])])
    # The likeliest rows first: most photos' plate is among them, and each row read costs ~18 ms of CPU.
    for stage in (lines[: options.locate_first], lines[options.locate_first :]):
        if not stage:
            continue
        crops = [imaging.crop_line(image, ln.quad, margin_x=0.0, margin_y=0.0) for ln in stage]
        for ln, decoded in zip(stage, _read(engine, crops, options), strict=True):
            ln.decoded, ln.text = decoded, decoded.text
        if any(_sure(ln.text, ln.decoded.raw, ln.decoded.confidence, options) for ln in stage):
            break
    tallest = max(ln.height for ln in lines)
    unsure = _unsure_best(lines, boxes, tallest, options)
    sure = [ln for ln in lines if _sure(ln.text, ln.decoded.raw, ln.decoded.confidence, options)]
    sure.sort(key=lambda ln: plate_likeness(ln.text, ln.decoded.confidence, ln.height, tallest), reverse=True)
    readings: list[PlateReading] = []
    index = {id(ln): i for i, ln in enumerate(lines)}
    for rank, ln in enumerate(sure):  # the best first; another sure row is another vehicle's plate
        if any(r.plate == ln.text for r in readings):
            continue
        reading = _reading(engine, image, ln, options, vote=False)
        reading.box = [[round(float(x), 1), round(float(y), 1)] for x, y in boxes[id(ln)]]
        reading.state, reading.state_confidence = _state_near(lines, ln)
        if reading.state is None and rank == 0:  # for the best plate only (~18 ms of CPU a row read)
            reading.state, reading.state_confidence = _state_row(engine, image, found, index[id(ln)], options)
        _with_state(reading, options)
        readings.append(reading)
    return readings, unsure


def _unsure_best(
    lines: list[_Line], boxes: dict[int, np.ndarray], tallest: float, options: Options
) -> tuple[_Line, np.ndarray] | None:
    """The most plate-like row read (a plausible plate, no date or slogan, 4-8 characters, confidence at least
    FALLBACK_MIN_CONFIDENCE), however unsure otherwise: a photo whose plate neither the rows nor the detector read
    surely still gets a reading, and its alternatives, for the hot list, rather than none (`SH0R7X` read `SH0LR7X`,
    a separator read as a letter, with `SH0R7X` among its alternatives)."""
    if not options.locate_fallback:
        return None
    plates = [
        ln
        for ln in lines
        if 4 <= len(ln.text) <= 8
        and ln.decoded.confidence >= FALLBACK_MIN_CONFIDENCE
        and is_plate_text(ln.text)
        and not is_non_plate_text(ln.decoded.raw)
    ]
    if not plates:
        return None
    best = max(plates, key=lambda ln: plate_likeness(ln.text, ln.decoded.confidence, ln.height, tallest))
    return best, boxes[id(best)]


def _state_row(
    engine: OcrEngine, image: np.ndarray, rows: list[locating.Row], best: int, options: Options
) -> tuple[str | None, float | None]:
    """The state name from a row of smaller characters just above or below the plate's number (found with it)
    when the rows read did not name one. Only such a row is read, not the bands around every plate: on the dev
    photos those found a state 3 times in 86, for ~35 ms of CPU on every photo."""
    plate = rows[best]
    width = plate.box[2] - plate.box[0]
    for j, row in enumerate(rows):
        dx, dy = row.center[0] - plate.center[0], row.center[1] - plate.center[1]
        if j == best or abs(dx) > width / 2 or not 0.6 * plate.height < abs(dy) < 3.0 * plate.height:
            continue
        if not 0.2 * plate.height < row.height < 0.85 * plate.height:
            continue
        # Across the plate's width: a blurred name's letters merge, and its row of blobs is only part of it.
        pad = 0.7 * plate.height
        quad = row.quad(plate.box[0] - pad, plate.box[2] + pad, 0.8 * row.height, 0.8 * row.height)
        crop = imaging.crop_line(image, quad, margin_x=0.0, margin_y=0.0)
        decoded = _read(engine, [crop], replace(options, prior=False))[0]
        state = state_in_text(decoded.raw)
        if state is not None:
            return state, round(decoded.confidence, 4)
    return None, None


def _sure(text: str, raw: str, confidence: float, options: Options) -> bool:
    """A reading sure enough to skip the text detector on the whole photo: 5-8 characters mixing letters and digits
    (digits alone are more often a phone or fleet number), read confidently, more so outside the listed formats."""
    return (
        5 <= len(text) <= 8
        and any(ch.isdigit() for ch in text)
        and any(ch.isalpha() for ch in text)
        and is_plate_text(text)
        and not is_non_plate_text(raw)
        and confidence >= (options.locate_sure if _fits(text, options) else options.locate_sure_unlisted)
    )


def recognize_image(engine: OcrEngine, image: np.ndarray, options: Options = Options()) -> Recognition:
    result = Recognition(width=int(image.shape[1]), height=int(image.shape[0]))
    t0 = time.perf_counter()
    clock = {"locate": 0.0}
    unsure: tuple[_Line, np.ndarray] | None = None
    if options.locate:
        fast, unsure = _located(engine, image, options, clock, result.regions)
        if fast:
            result.plates.extend(fast)
            locate = clock["locate"]
            total = time.perf_counter() - t0
            result.timings_ms = {"locate": round(locate * 1000, 1), "recognize": round((total - locate) * 1000, 1)}
            return result
    # Coarse to fine: a small detection pass finds most plates fast; only a photo with no confident plate pays
    # for a pass at higher resolution (distant, small plates). With `settle`, a plate found at the coarse scale
    # but read poorly there is refined from the full-resolution photo first, and that reading can settle it.
    lines: list[_Line] = []
    refined: dict[int, PlateReading | None] = {}
    readings: list[tuple[_Line, PlateReading]] = []
    for pass_no, max_side in enumerate(options.detect_sides, 1):
        lines += _read_lines(engine, image, max_side, options, clock, result.regions)
        last = pass_no == len(options.detect_sides)
        # With `fine_pass="empty"`, a plate-shaped line at this scale ends the search, read or misread.
        found = options.fine_pass == "empty" and any(is_plate_text(ln.text) for ln in lines)
        if last or found or _confident(lines, options) or options.settle:
            readings = _ranked(engine, image, lines, options, refined)
        if not last and (found or _confident(lines, options) or (options.settle and _settled(readings))):
            break
    seen: set[str] = set()
    for ln, reading in readings:
        if reading.plate in seen:
            continue
        seen.add(reading.plate)
        if reading.state is None:  # a refined reading may have read the state inside its region already
            reading.state, reading.state_confidence = _state_near(lines, ln)
        _with_state(reading, options)
        result.plates.append(reading)
    if not result.plates and unsure is not None:
        reading = _reading(engine, image, unsure[0], options, vote=False)
        reading.box = [[round(float(x), 1), round(float(y), 1)] for x, y in unsure[1]]
        result.plates.append(reading)
    t2 = time.perf_counter()
    locate = clock["locate"]
    result.timings_ms = {"locate": round(locate * 1000, 1), "recognize": round((t2 - t0 - locate) * 1000, 1)}
    return result


def recognize_bytes(engine: OcrEngine, data: bytes, options: Options = Options()) -> Recognition:
    """The photo read by the first reader (this pipeline), then, with `options.second`, by the second reader on every
    candidate region and the two arbitrated (second_opinion.py)."""
    t0 = time.perf_counter()
    image = imaging.decode(data)
    t1 = time.perf_counter()
    result = recognize_image(engine, image, options)
    t2 = time.perf_counter()
    second = 0.0
    if options.second:
        apply_second_reader(image, result, options)
        second = time.perf_counter() - t2
    result.timings_ms = {
        "decode": round((t1 - t0) * 1000, 1),
        **result.timings_ms,
        "second": round(second * 1000, 1),
        "total": round((time.perf_counter() - t0) * 1000, 1),
    }
    return result

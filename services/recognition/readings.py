"""A photo's plate readings, as the pipeline (pipeline.py) and the second reader's arbitration (second_opinion.py)
hand them on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.recognition.decoding import Decoded


@dataclass
class PlateReading:
    plate: str
    raw: str
    confidence: float
    box: list[list[float]]
    char_confidences: list[float]
    alternatives: list[tuple[str, float]]
    state: str | None = None
    state_confidence: float | None = None
    decoded: Decoded | None = field(default=None, repr=False, compare=False)  # to decode again once the state is read
    state_decoded: str | None = None  # the state whose formats decoded it
    agreement: str | None = None  # "both" / "one" / "none" (arbitration.py); None without the second reader
    readings: dict[str, str | None] = field(default_factory=dict)  # each reader's own reading ("first", "second")


@dataclass
class Recognition:
    width: int
    height: int
    plates: list[PlateReading] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Candidate plate-number regions seen (localizer rows, detector lines): what the second reader reads.
    regions: list[np.ndarray] = field(default_factory=list, repr=False)

"""Two independent readers, one answer: PP-OCR (the pipeline) and the plate-specific recognizer (second_reader.py).

Two readers that fail on different photos are worth more than either tuned further (issue 27): when they give the
same reading it is a near-certain read; when they differ, the plate-format grammar, each reader's per-character
probabilities (each reading scored under the other reader's too) and the plate evidence of its region decide, and the
loser stays among the alternatives, so the hot list still sees it. A make, model or word (`VEHICLE_WORDS`) never wins
over a plate-shaped reading.

`agreement`: "both" (the two readers gave the answer), "one" (they differ, or only one read a plate: the answer is
one reader's), "none" (they differ and neither is sure of it: confidence under NONE_BELOW).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal

from services.recognition.grammar import grammar
from services.recognition.hitrate import hit_value
from services.recognition.second_reader import ALPHABET, PAD, SlotReading
from shared.plates import confusion_key, is_non_plate_text, is_plate_text

Agreement = Literal["both", "one", "none"]
Reader = Literal["first", "second"]

# Makes, models, badges and the words of dealer frames that both readers read confidently off a car (JEEP at 0.999):
# plate-shaped enough to pass `is_plate_text`, never a plate when anything plate-shaped is read beside them.
VEHICLE_WORDS = frozenset(
    """
    ACURA ALTIMA AUDI BUICK CADILLAC CAMRY CHEVY CHRYSLER CIVIC COROLLA DODGE FIAT GMC HYUNDAI INFINITI JEEP KIA
    LEXUS LINCOLN MAZDA MERCEDES MINI MITSUBISHI NISSAN RAM SUBARU TESLA TOYOTA VOLVO LEGACY OUTBACK FORESTER
    IMPALA MALIBU SILVERADO TAHOE SIERRA YUKON ACCORD PILOT ODYSSEY SENTRA MAXIMA ROGUE MURANO SONATA ELANTRA
    TUCSON SANTAFE OPTIMA SORENTO FUSION FOCUS ESCAPE EXPLORER RANGER MUSTANG PRIUS RAV4 TACOMA TUNDRA HIGHLANDER
    SIENNA WRANGLER CHEROKEE COMPASS PATRIOT LIBERTY CHARGER CHALLENGER JOURNEY CARAVAN DURANGO JETTA PASSAT
    GOLF BEETLE HYBRID LIMITED SPORT TOURING DEALER MOTORS AUTO SALES HONDA FORD CHEVROLET VOLKSWAGEN
    """.split()
)
NONE_BELOW = 0.5  # an answer the readers disagree on, read less surely than this: "none" (no reader is sure)
SUPPORT_FLOOR = 0.05  # the least cross-support a reading gets (the other reader may simply not see the plate)
UNLISTED = 0.4  # a reading in no listed format, against one in a listed format (vanity plates exist)


def is_vehicle_word(text: str) -> bool:
    return text.upper() in VEHICLE_WORDS or is_non_plate_text(text)


def plate_shaped(text: str) -> bool:
    """5-8 characters with a digit, a plausible plate, no vehicle word."""
    return 5 <= len(text) <= 8 and any(ch.isdigit() for ch in text) and is_plate_text(text)


@dataclass(frozen=True)
class Reading:
    """One reader's reading of one region."""

    reader: Reader
    text: str
    confidence: float
    evidence: float = 1.0  # how plate-like the region is (the second reader's United States head; 1 if unknown)
    alternatives: tuple[tuple[str, float], ...] = ()  # the reader's own alternatives with their probabilities
    slots: SlotReading | None = None  # the second reader's per-slot probabilities (to score another text)
    rank: int = 0  # this reader's rank of the region (0: its best)


@dataclass
class Verdict:
    plate: str
    confidence: float
    agreement: Agreement
    winner: Reader
    first: str | None  # each reader's own best reading
    second: str | None
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    loser: str | None = None


def fit(text: str, vanity: float = 0.02) -> float:
    """The grammar's word on a reading: 1 in a listed format, UNLISTED otherwise, 0 for a vehicle word."""
    if not text or is_vehicle_word(text):
        return 0.0
    shape = 1.0 if plate_shaped(text) else 0.5
    return shape * (1.0 if grammar(None, vanity).fits(text) else UNLISTED)


def support(text: str, others: list[Reading]) -> float:
    """How much the other reader's readings back `text`: the second reader's per-slot probability of it (best
    region), or, for the first reader, the probability it gives `text` among its alternatives."""
    best = 0.0
    for other in others:
        if other.text == text:
            return 1.0
        if other.slots is not None:
            # The odds of `text` against the reader's own reading, over all slots (one character it gives 1 % is
            # a 1 % support, not the 60 % a per-slot geometric mean would say).
            slots = other.slots.probs.shape[0]
            best = max(best, (other.slots.likelihood(text) / max(other.slots.confidence, 1e-9)) ** slots)
        else:
            best = max(best, dict(other.alternatives).get(text, 0.0))
    return max(best, SUPPORT_FLOOR)


def score(reading: Reading, others: list[Reading], vanity: float = 0.02) -> float:
    return reading.confidence * fit(reading.text, vanity) * support(reading.text, others) * reading.evidence


def arbitrate(first: list[Reading], second: list[Reading], vanity: float = 0.02, limit: int = 8) -> Verdict | None:
    """The answer from both readers' readings (each best first); None when neither read anything."""
    first = [r for r in first if r.text]
    second = [r for r in second if r.text]
    if not first and not second:
        return None
    top_first = first[0].text if first else None
    top_second = max(second, key=lambda r: r.confidence * fit(r.text, vanity) * r.evidence).text if second else None
    # Agreement: a reading both readers gave, on any region (the second reader may vote for another line than the
    # first reader's best: a badge, a dealer frame picked first). A vehicle word both read is still no plate.
    agreed = [
        (f, s) for f in first for s in second if f.text == s.text and fit(f.text, vanity) > 0 and plate_shaped(f.text)
    ]
    candidates = [(score(r, second, vanity), r) for r in first] + [(score(r, first, vanity), r) for r in second]
    if agreed:
        f, s = max(agreed, key=lambda fs: fs[0].confidence * fs[1].confidence * fs[1].evidence / (1 + fs[0].rank))
        verdict = Verdict(f.text, max(f.confidence, s.confidence), "both", "first", top_first, top_second)
    else:
        scored = [c for c in candidates if c[0] > 0] or [(r.confidence * 1e-3, r) for _, r in candidates]
        _, win = max(scored, key=lambda c: (c[0], c[1].reader == "first"))
        agreement: Agreement = "one" if win.confidence >= NONE_BELOW and fit(win.text, vanity) > 0 else "none"
        verdict = Verdict(win.text, win.confidence, agreement, win.reader, top_first, top_second)
        losers = [t for t in (top_first, top_second) if t and t != win.text]
        verdict.loser = losers[0] if losers else None
    verdict.alternatives = merged_alternatives(verdict, first, second, limit)
    return verdict


def merged_alternatives(
    verdict: Verdict, first: list[Reading], second: list[Reading], limit: int
) -> list[tuple[str, float]]:
    """What the hot list is sent beside the answer: the other reader's reading (at its confidence), then each
    reader's own alternatives for its best region, ranked by hit value (`hitrate.hit_value`), one per key."""
    offered: dict[str, float] = {}

    def offer(text: str, p: float) -> None:
        if text and text != verdict.plate and not is_vehicle_word(text) and p > offered.get(text, 0.0):
            offered[text] = p

    for reading in (first[:1] + second[:1]) if verdict.agreement == "both" else (first[:1] + _best(second)):
        offer(reading.text, reading.confidence)
    for reading in first[:1]:
        for text, p in reading.alternatives:
            offer(text, p)
    for reading in _best(second):
        if reading.slots is not None:
            for text, p in slot_alternatives(reading.slots):
                offer(text, p)
    own = confusion_key(verdict.plate)
    by_key: dict[str, tuple[float, str, float]] = {}
    for text, p in offered.items():
        key = confusion_key(text)
        value = hit_value(text, p)
        if key != own and (key not in by_key or value > by_key[key][0]):
            by_key[key] = (value, text, p)
    ranked = sorted(by_key.values(), key=lambda v: (-v[0], v[1]))
    return [(text, round(p, 4)) for _, text, p in ranked[:limit]]


def _best(second: list[Reading]) -> list[Reading]:
    return sorted(second, key=lambda r: -(r.confidence * fit(r.text) * r.evidence))[:1]


def slot_alternatives(slots: SlotReading, limit: int = 6) -> list[tuple[str, float]]:
    """The second reader's next readings: each slot's runner-up swapped in (its odds against the slot's best),
    one or two at a time, a pad included (a character dropped or added); probability: the reading's times the odds."""
    probs = slots.probs
    best = probs.argmax(axis=1)
    base = float(slots.confidence)
    swaps: list[tuple[int, int, float]] = []
    for i, k in enumerate(best):
        order = probs[i].argsort()[::-1][1:3]
        for j in order:
            odds = float(probs[i, j] / max(probs[i, k], 1e-9))
            if odds >= 0.01:
                swaps.append((i, int(j), odds))
    found: dict[str, float] = {}

    def text_of(chosen: list[int]) -> str:
        text = "".join(ALPHABET[k] for k in chosen if ALPHABET[k] != PAD)
        return text.replace("O", "0") if any(ch.isdigit() for ch in text) else text

    for i, j, odds in swaps:
        chosen = list(best)
        chosen[i] = j
        text = text_of(chosen)
        found[text] = max(found.get(text, 0.0), base * odds)
    for (i, a, oa), (j, b, ob) in combinations(swaps, 2):
        if i != j:
            chosen = list(best)
            chosen[i], chosen[j] = a, b
            text = text_of(chosen)
            found[text] = max(found.get(text, 0.0), base * oa * ob)
    found.pop(slots.text, None)
    return sorted(found.items(), key=lambda kv: -kv[1])[:limit]

"""Plate-aware decoding of the recognizer's CTC output.

The PP-OCR recognizer scores ~18,700 symbols (Chinese, punctuation, lower case). A US plate holds only A-Z and 0-9,
so the decoder folds lower case into upper case and drops every other symbol into "not a plate character". The
letter O becomes the digit 0 on a plate with digits (US plates print them alike and the hot list compares them as
one); an all-letter vanity plate keeps its O. What remains gives per-character confidences and, from the runner-up
at each character, the alternative readings.

With the plate-format prior (`beam_search`, `decode_with_prior`), the folded scores are searched again by a beam
under the US serial formats of `grammar.py`; its other readings become the alternatives (`key_alternatives`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from heapq import nlargest
from itertools import combinations, product

import numpy as np

from services.recognition.grammar import Grammar
from services.recognition.hitrate import hit_value
from shared.plates import CONFUSION_CLASSES, confusion_key

PLATE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CLASS_OF = {ch: cls for cls in CONFUSION_CLASSES for ch in cls}


@dataclass(frozen=True)
class Decoded:
    text: str  # plate characters only
    raw: str  # the recognizer's own greedy reading, every symbol
    char_confidences: list[float]
    runners_up: list[list[tuple[str, float]]]  # per character, the next likely plate characters
    # With the beam decoder: the other readings it found, most likely first (probability under the prior, of all
    # readings the beam kept), and the folded scores it read, so a state found later can decode the line again.
    beams: list[tuple[str, float]] | None = field(default=None, compare=False)
    folded: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def confidence(self) -> float:
        return float(np.prod(self.char_confidences) ** (1 / len(self.char_confidences))) if self.text else 0.0


def plate_columns(charset: list[str]) -> list[list[int]]:
    """Per plate character (PLATE_ALPHABET order), the recognizer's symbols that print as it (upper and lower case)."""
    columns: dict[str, list[int]] = {ch: [] for ch in PLATE_ALPHABET}
    for index, symbol in enumerate(charset):
        if index == 0:
            continue
        ch = symbol.upper() if symbol.isascii() else symbol
        if ch in columns:
            columns[ch].append(index)
    return [columns[ch] for ch in PLATE_ALPHABET]


def fold(probs: np.ndarray, columns: list[list[int]]) -> np.ndarray:
    """(..., T, charset) → (..., T, 2 + 36): blank, any non-plate symbol, then each plate character."""
    plate = np.stack([probs[..., cols].sum(axis=-1) for cols in columns], axis=-1)
    blank = probs[..., :1]
    other = np.clip(1.0 - blank - plate.sum(axis=-1, keepdims=True), 0.0, 1.0)
    return np.concatenate([blank, other, plate], axis=-1)


class PlateDecoder:
    """Maps the recognizer's symbol set onto blank + other + the plate alphabet, once, then decodes lines."""

    def __init__(self, charset: list[str]) -> None:
        self.charset = charset
        self._columns = plate_columns(charset)

    def decode(self, probs: np.ndarray, plate: np.ndarray | None = None, head_weight: float = 1.0) -> Decoded:
        """Decode one line from PP-OCR's scores `probs`, mixed with the plate head's `plate` scores when given (blank,
        then the plate alphabet) at `head_weight`; `raw` is always PP-OCR's own greedy reading."""
        raw_idx = probs.argmax(axis=1)
        raw = "".join(self.charset[i] for t, i in enumerate(raw_idx) if i != 0 and (t == 0 or raw_idx[t - 1] != i))
        folded = fold(probs, self._columns)
        if plate is not None:
            head = np.concatenate([plate[:, :1], np.zeros_like(plate[:, :1]), plate[:, 1:]], axis=1)
            folded = head_weight * head + (1.0 - head_weight) * folded
        best = folded.argmax(axis=1)
        chars: list[str] = []
        confs: list[float] = []
        runners: list[list[tuple[str, float]]] = []
        t = 0
        steps = len(best)
        while t < steps:
            label = int(best[t])
            end = t
            while end + 1 < steps and best[end + 1] == label:
                end += 1
            if label >= 2:
                span = folded[t : end + 1]
                peak = int(span[:, label].argmax())
                row = span[peak, 2:]
                chars.append(PLATE_ALPHABET[label - 2])
                confs.append(float(row[label - 2]))
                order = np.argsort(row)[::-1][1:4]
                runners.append([(PLATE_ALPHABET[k], float(row[k])) for k in order if row[k] > 0.01])
            t = end + 1
        if any(ch.isdigit() for ch in chars):
            chars = ["0" if ch == "O" else ch for ch in chars]
            runners = [
                [("0" if a == "O" else a, p) for a, p in opts if a != "O" or ch != "0"]
                for ch, opts in zip(chars, runners, strict=True)
            ]
        return Decoded("".join(chars), raw, confs, runners, None, folded)


def alternatives(decoded: Decoded, limit: int = 5) -> list[tuple[str, float]]:
    """The next most likely readings: each character may take its runner-up from the recognizer's scores, or a
    member of its confusion class (at a low prior), scored by the product of character probabilities."""
    text = decoded.text
    if not text:
        return []
    options: list[list[tuple[str, float]]] = []
    for ch, conf, runners in zip(text, decoded.char_confidences, decoded.runners_up, strict=True):
        opts = {ch: conf}
        for alt, p in runners:
            opts[alt] = max(opts.get(alt, 0.0), p)
        for alt in _CLASS_OF.get(ch, ""):
            if alt in PLATE_ALPHABET and alt not in opts:
                opts[alt] = min(0.05, (1 - conf) / 2)
        options.append(nlargest(3, opts.items(), key=lambda kv: kv[1]))
    # Few positions differ from the best reading in practice: search the small product, keep the top few.
    scored: dict[str, float] = {}
    for combo in product(*options):
        reading = "".join(ch for ch, _ in combo)
        if reading == text:
            continue
        score = float(np.prod([p for _, p in combo]))
        scored[reading] = max(scored.get(reading, 0.0), score)
        if len(scored) > 2000:
            break
    best = nlargest(limit, scored.items(), key=lambda kv: kv[1])
    return [(reading, round(score, 4)) for reading, score in best]


# Common US serial formats (D digit, L letter), most frequent first; a reading one character off one of these,
# where the recognizer's own runner-up for that character fits the format, is corrected to it.
PLATE_FORMATS = ("DLLLDDD", "LLLDDDD", "DDDLLL", "LLLDDD")
_CLASS = {"D": str.isdigit, "L": str.isalpha}


def _fits(text: str, fmt: str) -> bool:
    return len(text) == len(fmt) and all(_CLASS[k](ch) for ch, k in zip(text, fmt, strict=True))


def fits_format(text: str) -> bool:
    """The reading fits one of the common US serial formats."""
    return any(_fits(text, fmt) for fmt in PLATE_FORMATS)


def apply_syntax(decoded: Decoded, min_ratio: float = 0.02) -> Decoded:
    """Confusion-aware syntax correction: when a reading fits no common format but would fit one by swapping a
    single character for the recognizer's runner-up (at least `min_ratio` of the first choice's probability) or
    for a member of its confusion class, take the swap. Readings that already fit a format are left alone."""
    text = decoded.text
    if not text or any(_fits(text, fmt) for fmt in PLATE_FORMATS):
        return decoded
    for fmt in PLATE_FORMATS:
        if len(fmt) != len(text):
            continue
        wrong = [i for i, (ch, k) in enumerate(zip(text, fmt, strict=True)) if not _CLASS[k](ch)]
        if len(wrong) != 1:
            continue
        i = wrong[0]
        want = _CLASS[fmt[i]]
        conf = decoded.char_confidences[i]
        options = [(alt, p) for alt, p in decoded.runners_up[i] if want(alt) and p >= min_ratio * conf]
        if not options:
            options = [(alt, min(0.05, (1 - conf) / 2)) for alt in _CLASS_OF.get(text[i], "") if want(alt)]
        if not options:
            continue
        alt, p = max(options, key=lambda item: item[1])
        confs = list(decoded.char_confidences)
        confs[i] = p
        runners = [list(r) for r in decoded.runners_up]
        runners[i] = [(text[i], conf)]
        return Decoded(text[:i] + alt + text[i + 1 :], decoded.raw, confs, runners)
    return decoded


# Beam search over the CTC output under the plate-format prior (grammar.py).
_ZERO, _LETTER_O = PLATE_ALPHABET.index("0"), PLATE_ALPHABET.index("O")


def _candidates(folded: np.ndarray, min_prob: float) -> tuple[np.ndarray, list[list[tuple[int, float]]]]:
    """Per step: the probability of emitting nothing (blank, or a symbol that is no plate character) and the plate
    characters worth extending with. A round character is one symbol, 0, at the larger of the recognizer's 0 and O
    (plates print them alike; their sum would favour it over D, U or Q, which the recognizer tells apart); the
    grammar lets it stand for a digit or a letter."""
    chars = folded[:, 2:].astype(np.float64)
    chars[:, _ZERO] = np.maximum(chars[:, _ZERO], chars[:, _LETTER_O])
    chars[:, _LETTER_O] = 0.0
    rest = folded[:, 0].astype(np.float64) + folded[:, 1]
    steps = []
    for row in chars:
        idx = np.nonzero(row >= min_prob)[0]
        steps.append([(int(k), float(row[k])) for k in idx])
    return rest, steps


def _add(a: float, b: float) -> float:
    return a + b


def beam_search(
    folded: np.ndarray, grammar: Grammar, beam: int = 12, min_prob: float = 1e-3, best_path: bool = True
) -> list[tuple[str, float, list[tuple[float, int]]]]:
    """CTC prefix beam search over `folded` (T, 2 + 36) that ranks partial readings by their CTC probability times
    the best prior they can still reach, and whole readings by CTC probability times the prior of their format.

    `best_path`: a reading's probability is that of its most likely alignment (not the sum over alignments), so with
    equal priors the search returns the recognizer's own greedy reading, and departs from it only where the prior
    pays for it (measured: the sum favoured characters spread over two steps, U read as 0).

    Returns readings best first as (text, share of the kept readings' prior-weighted mass, per character its peak
    probability and the step of that peak)."""
    rest, steps = _candidates(folded, min_prob)
    # prefix → [p ending in blank, p ending in its last character, that character's (peak p, step) list]
    comb = max if best_path else _add
    beams: dict[str, list] = {"": [1.0, 0.0, []]}
    for t, cands in enumerate(steps):
        blank = float(rest[t])
        row = dict(cands)
        nxt: dict[str, list] = {}
        for prefix, (pb, pnb, confs) in beams.items():
            entry = nxt.setdefault(prefix, [0.0, 0.0, confs])
            entry[0] = comb(entry[0], comb(pb, pnb) * blank)
            if prefix:
                last = PLATE_ALPHABET.index(prefix[-1])
                p = row.get(last, 0.0)
                if p and pnb:
                    entry[1] = comb(entry[1], pnb * p)
                    if p > entry[2][-1][0]:
                        entry[2] = [*entry[2][:-1], (p, t)]
            if len(prefix) >= MAX_READING:
                continue
            for k, p in cands:
                ch = PLATE_ALPHABET[k]
                add = (pb if prefix and prefix[-1] == ch else comb(pb, pnb)) * p
                if add <= 0.0:
                    continue
                new = prefix + ch
                grown = nxt.get(new)
                if grown is None:
                    nxt[new] = [0.0, add, [*confs, (p, t)]]
                else:
                    if add > comb(grown[0], grown[1]):
                        grown[2] = [*confs, (p, t)]
                    grown[1] = comb(grown[1], add)
        ranked = sorted(nxt.items(), key=lambda kv: comb(kv[1][0], kv[1][1]) * grammar.reach(kv[0]), reverse=True)
        ranked = ranked[:beam]
        top = comb(ranked[0][1][0], ranked[0][1][1]) or 1.0
        # Rescale every step: long lines would underflow otherwise (the ranking is unchanged).
        beams = {k: [v[0] / top, v[1] / top, v[2]] for k, v in ranked}
    finished = [(text, comb(pb, pnb) * grammar.prior(text), confs) for text, (pb, pnb, confs) in beams.items() if text]
    finished = [f for f in finished if f[1] > 0.0]
    total = sum(score for _, score, _ in finished) or 1.0
    finished.sort(key=lambda f: f[1], reverse=True)
    return [(text, score / total, confs) for text, score, confs in finished]


MAX_READING = 8


def _round_to_zero(text: str) -> str:
    """The beam writes a round character 0; it stays 0 on a plate with another digit (the hot list and the labels
    write it so) and is O on an all-letter (vanity) plate."""
    return text if any(ch.isdigit() and ch != "0" for ch in text) else text.replace("0", "O")


def decode_with_prior(decoded: Decoded, grammar: Grammar, beam: int = 12, best_path: bool = True) -> Decoded:
    """`decoded` read again by the beam search under `grammar`; unchanged when it carries no scores or the beam
    finds no reading. The greedy reading is kept as `raw` (what the recognizer itself read)."""
    if decoded.folded is None or len(decoded.text) > MAX_READING + 1:
        # A line far longer than a plate (a dealer frame, a slogan) is no plate: squeezing it into one would make
        # it look like one.
        return decoded
    found = beam_search(decoded.folded, grammar, beam, best_path=best_path)
    if not found:
        return decoded
    merged: dict[str, float] = {}
    for text, share, _ in found:
        key = _round_to_zero(text)
        merged[key] = merged.get(key, 0.0) + share
    text, _, confs = found[0]
    chars = _round_to_zero(text)
    runners = []
    for ch, (_, t) in zip(chars, confs, strict=True):
        row = decoded.folded[t, 2:]
        order = np.argsort(row)[::-1][:4]
        runners.append(
            [(PLATE_ALPHABET[k], float(row[k])) for k in order if PLATE_ALPHABET[k] != ch and row[k] > 0.01][:3]
        )
    beams = sorted(merged.items(), key=lambda kv: kv[1], reverse=True)
    return Decoded(chars, decoded.raw, [float(p) for p, _ in confs], runners, beams, decoded.folded)


# Letters that plate fonts print alike but the shared confusion classes (shared.plates) keep apart, because widening
# those changes hot-list matching, stored keys and access grants for every service (docs/recognition-19.md):
# recognition offers the look-alike as an alternative reading instead, where its own posterior leaves room.
LOOKALIKES: tuple[str, ...] = ("HM", "MN", "NW", "MW", "UJ", "EF")
_LOOKALIKE_OF: dict[str, str] = {}
for _pair in LOOKALIKES:
    for _a, _b in (_pair, _pair[::-1]):
        _LOOKALIKE_OF[_a] = _LOOKALIKE_OF.get(_a, "") + _b


def candidate_readings(decoded: Decoded, lookalike: float = 0.0) -> dict[str, float]:
    """Readings the line may hold, each with its probability of being the plate: the beam's readings (their share),
    and beside them, from the best reading's per-character posteriors, each character swapped for one of its
    runners-up (the share times the runner-up's probability over the character's: the recognizer's own odds; two
    swaps multiply) and each character dropped (the share times the chance that the character is not there, 1 - its
    confidence: an emblem or a sticker read as one more character). The beam keeps only its 12 best partial readings
    at each step; the swaps reach what it dropped (`UJ5E1A` read `JJ5E1A` with U the first J's runner-up).

    `lookalike`: a letter's look-alikes (`LOOKALIKES`) are swapped in at odds no lower than `lookalike` times the
    chance the letter is wrong (1 - its confidence), where the recognizer ranks them lower (`002HHM` read `002HHH`,
    M at 0.025 beside H at 0.60)."""
    found = dict(decoded.beams or [])
    text = decoded.text
    if not text:
        return found
    share = decoded.beams[0][1] if decoded.beams else 1.0
    digits = any(ch.isdigit() for ch in text)

    def offer(reading: str, p: float) -> None:
        if reading and p > found.get(reading, 0.0):
            found[reading] = p

    swaps: list[tuple[int, str, float]] = []
    for i, (ch, conf, runners) in enumerate(zip(text, decoded.char_confidences, decoded.runners_up, strict=True)):
        odds: dict[str, float] = {}
        for alt, p in runners:
            alt = "0" if alt == "O" and digits else alt
            if alt != ch:
                odds[alt] = max(odds.get(alt, 0.0), min(1.0, p / max(conf, 1e-6)))
        if lookalike > 0.0:
            for alt in _LOOKALIKE_OF.get(ch, ""):
                odds[alt] = max(odds.get(alt, 0.0), min(1.0, lookalike * (1.0 - conf) / max(conf, 1e-6)))
        swaps.extend((i, alt, o) for alt, o in odds.items())
        if len(text) > 2:
            offer(text[:i] + text[i + 1 :], share * (1.0 - conf))
    for i, alt, odds in swaps:
        offer(text[:i] + alt + text[i + 1 :], share * odds)
    for (i, a, odds_a), (j, b, odds_b) in combinations(swaps, 2):
        if i != j:
            chars = list(text)
            chars[i], chars[j] = a, b
            offer("".join(chars), share * odds_a * odds_b)
    found.pop(text, None)
    return found


def key_alternatives(
    decoded: Decoded, limit: int, min_share: float = 0.0, lookalike: float = 0.0
) -> list[tuple[str, float]]:
    """Readings that the hot list would match under another key than the reading's, best value first: a key's
    probability (its candidate readings' summed, `candidate_readings`) per its expected false hits against a 1 M
    list (`hitrate.hit_value`; a key in a common format costs ~1 false hit per 100 reads, one in no listed format
    far less). At most `limit`, each worth at least `min_share` (a typical key needs that much probability, a
    cheap one less). Each comes with its probability. Without the beam's readings: `alternatives`."""
    if limit <= 0:
        return []
    if not decoded.beams:
        return alternatives(decoded, limit)
    own = confusion_key(decoded.text)
    by_key: dict[str, list[tuple[float, str]]] = {}
    for text, p in candidate_readings(decoded, lookalike).items():
        key = confusion_key(text)
        if key != own:
            by_key.setdefault(key, []).append((p, text))
    ranked = []
    for options in by_key.values():
        p = sum(q for q, _ in options)
        text = max(options)[1]  # the key's likeliest reading stands for it
        ranked.append((hit_value(text, p), text, p))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    return [(text, round(p, 4)) for value, text, p in ranked if value >= min_share][:limit]

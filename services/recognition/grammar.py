"""The plate-format prior: US serial formats per state (`data/plate_formats.toml`, with its sources), as prior
probabilities of a reading's shape (D digit, L letter) given the state read off the plate, or none.

A reading that fits no listed format can still be a vanity or specialty plate: it keeps a small fixed prior
(`vanity`), so the decoder prefers a listed format only where the recognizer's own probabilities leave it in doubt.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

FORMATS_FILE = Path(__file__).parent / "data" / "plate_formats.toml"
STATE_SHARE = 0.8  # with a state read off the plate, its own formats' share of the prior (the rest: any state's)
MAX_VANITY = 8
# A round character standing for a letter in a listed format: US serials rarely issue the letter O (it reads as 0),
# so a round glyph in a letter slot is more often a D, U or Q the recognizer rounded off; it fits the slot at this
# factor of the format's prior (1: as well as any letter). Measured by fold (docs/recognition-19.md): 0.3 corrected
# one plate on each fold (RDN464, AU41257) and broke none; 0.1 did the same.
ROUND_LETTER = 0.3


def shape(text: str) -> str:
    """`ABC123` → `LLLDDD`; a round character (0 or O: plates print them alike) is `R`, either."""
    return "".join("R" if ch in "0O" else "D" if ch.isdigit() else "L" for ch in text)


def _matches(fmt: str, shaped: str) -> bool:
    return all(k == s or s == "R" for k, s in zip(fmt, shaped, strict=False))


def _fit(fmt: str, shaped: str) -> float:
    """How well `shaped` fits `fmt` (a prefix of it): 0 if not, else ROUND_LETTER per round character in a letter
    slot."""
    if not _matches(fmt, shaped):
        return 0.0
    return ROUND_LETTER ** sum(k == "L" and s == "R" for k, s in zip(fmt, shaped, strict=False))


@dataclass(frozen=True)
class StateFormats:
    code: str
    source: str
    vehicles: float
    formats: dict[str, float]  # shape → share of the state's passenger plates


@cache
def load_table(path: Path = FORMATS_FILE) -> tuple[dict[str, StateFormats], float]:
    """Every state's formats, checked: shapes of D and L only, shares positive; and Minnesota's boost."""
    data = tomllib.loads(path.read_text())
    states: dict[str, StateFormats] = {}
    for code, entry in data["states"].items():
        formats = {str(k): float(v) for k, v in entry["formats"].items()}
        for fmt, share in formats.items():
            if not fmt or set(fmt) - {"D", "L"} or share <= 0 or len(fmt) > MAX_VANITY:
                raise ValueError(f"{path.name}: state {code}: bad format {fmt!r} = {share}")
        total = sum(formats.values())
        states[code] = StateFormats(code, str(entry["source"]), float(entry["vehicles"]),
                                    {k: v / total for k, v in formats.items()})  # fmt: skip
    return states, float(data.get("minnesota_boost", 1.0))


@dataclass(frozen=True)
class Grammar:
    """Prior probability of each listed shape, and `vanity` for any other 2-8 character reading."""

    priors: dict[str, float]
    vanity: float
    # Answers by reading (or partial reading): the beam search asks about the same few thousand many times.
    _whole: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    _partial: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    _reach: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def prior(self, text: str) -> float:
        """The prior of a whole reading: its listed shape's, or the vanity fallback's (whichever is larger)."""
        if not 2 <= len(text) <= MAX_VANITY:
            return 0.0
        found = self._whole.get(text)
        if found is None:
            found = self._whole[text] = max(_completions(self._key, shape(text), True), self.vanity)
        return found

    def best_completion(self, prefix_shape: str) -> float:
        """The largest prior a reading starting with this shape can still reach (for ranking partial readings)."""
        found = self._partial.get(prefix_shape)
        if found is None:
            found = self._partial[prefix_shape] = max(_completions(self._key, prefix_shape, False), self.vanity)
        return found

    def reach(self, prefix: str) -> float:
        """best_completion of a partial reading's text (cached by text)."""
        found = self._reach.get(prefix)
        if found is None:
            found = self._reach[prefix] = self.best_completion(shape(prefix))
        return found

    def fits(self, text: str) -> bool:
        return _completions(self._key, shape(text), True) > 0.0

    @property
    def _key(self) -> tuple[tuple[str, float], ...]:
        return _sorted_items(tuple(self.priors.items()))


@cache
def _sorted_items(items: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(items))


@cache
def _completions(priors: tuple[tuple[str, float], ...], shaped: str, whole: bool) -> float:
    """The largest prior of a listed format that `shaped` is (whole) or begins (not whole)."""
    return max(
        (p * _fit(fmt, shaped) for fmt, p in priors
         if (len(fmt) == len(shaped) if whole else len(fmt) >= len(shaped))),
        default=0.0,
    )  # fmt: skip


def _mixture(weights: dict[str, float]) -> dict[str, float]:
    states, _ = load_table()
    total = sum(weights.values())
    out: dict[str, float] = {}
    for code, w in weights.items():
        for fmt, share in states[code].formats.items():
            out[fmt] = out.get(fmt, 0.0) + w / total * share
    return out


@cache
def grammar(state: str | None = None, vanity: float = 0.02) -> Grammar:
    """The prior with no state known (every state by its vehicles, Minnesota boosted), or for `state` (its formats
    at STATE_SHARE, any state's for the rest: the state name may be misread, the car registered elsewhere)."""
    states, boost = load_table()
    everywhere = _mixture({c: s.vehicles * (boost if c == "MN" else 1.0) for c, s in states.items()})
    if state is None or state not in states:
        priors = everywhere
    else:
        own = states[state].formats
        priors = {f: STATE_SHARE * own.get(f, 0.0) + (1 - STATE_SHARE) * p for f, p in everywhere.items()}
    return Grammar({f: (1 - vanity) * p for f, p in priors.items()}, vanity)

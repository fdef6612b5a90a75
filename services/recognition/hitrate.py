"""Hot-list hit recall and false hits, as `alpr eval-ocr` reports them.

Ingest sends hotlist the reading and its alternatives; hotlist matches each by its confusion key
(shared.plates.confusion_key). A read *hits* when the true plate's key is among the keys sent; a *false hit* is a
list entry matched under any other key. The list is generated: `size` plates drawn from the US serial formats of
`data/plate_formats.toml`, states weighted by their vehicles (Minnesota boosted), so the chance that a wrong key lands
on an entry is what a real statewide list of that size would give.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from services.recognition.grammar import grammar
from shared.plates import confusion_key

DIGITS = np.frombuffer(b"0123456789", np.uint8)
LETTERS = np.frombuffer(b"ABCDEFGHIJKLMNPQRSTUVWXYZ", np.uint8)  # no O on US serials: it is printed as 0
INGEST_MAX_ALTERNATIVES = 8  # services/ingest/service.py sends at most this many alternatives


def generate_plates(size: int, seed: int = 19) -> list[str]:
    """`size` distinct-enough plates of the listed formats, in proportion to their prior with no state known."""
    rng = np.random.default_rng(seed)
    priors = grammar(None, 0.0).priors
    formats = sorted(priors)
    weights = np.array([priors[f] for f in formats])
    counts = rng.multinomial(size, weights / weights.sum())
    plates: list[str] = []
    for fmt, n in zip(formats, counts, strict=True):
        if not n:
            continue
        cols = [(DIGITS if k == "D" else LETTERS)[rng.integers(0, 10 if k == "D" else 25, n)] for k in fmt]
        block = np.stack(cols, axis=1)
        plates.extend(bytes(row).decode() for row in block)
    return plates


@cache
def hot_list_keys(size: int = 1_000_000, seed: int = 19) -> Counter[str]:
    """How many entries of the generated list share each confusion key."""
    return Counter(confusion_key(p) for p in generate_plates(size, seed))


def expected_entries(key: str, size: int = 1_000_000) -> float:
    """How many entries of a generated list of `size` share `key`, on average over lists: the exact expectation,
    where one drawn list of 1 M entries gives a handful of events over a hundred reads (too noisy to compare)."""
    return size * _key_probability(key)


@cache
def _share_table() -> dict[tuple[str, str], float]:
    """(format letter, key character) → the share of that position's characters with that confusion key."""
    pools = {"D": DIGITS.tobytes().decode(), "L": LETTERS.tobytes().decode()}
    table: dict[tuple[str, str], float] = {}
    for k, pool in pools.items():
        for c in pool:
            key = (k, confusion_key(c))
            table[key] = table.get(key, 0.0) + 1 / len(pool)
    return table


@cache
def _by_length() -> dict[int, list[tuple[str, float]]]:
    priors = grammar(None, 0.0).priors
    total = sum(priors.values())
    out: dict[int, list[tuple[str, float]]] = {}
    for fmt, prior in priors.items():
        out.setdefault(len(fmt), []).append((fmt, prior / total))
    return out


@lru_cache(maxsize=65536)
def _key_probability(key: str) -> float:
    table = _share_table()
    p = 0.0
    for fmt, prior in _by_length().get(len(key), []):
        q = prior
        for k, ch in zip(fmt, key, strict=True):
            q *= table.get((k, ch), 0.0)
            if not q:
                break
        p += q
    return p


# What an alternative key costs, in units of a typical plate key: one of a common 6-7 character format shares its key
# with about 0.01 entries of a 1 M list (a false hit per 100 reads). The generated list holds no vanity or specialty
# plates, so a key in no listed format costs nothing there; a real list holds some, so no key costs less than
# MIN_KEY_COST of a typical one (this also bounds how many cheap keys a read sends).
TYPICAL_KEY_ENTRIES = 0.01
MIN_KEY_COST = 0.1


def key_cost(text: str) -> float:
    """The expected false-hit cost of sending `text`'s key to a 1 M list, relative to a typical plate key."""
    return max(expected_entries(confusion_key(text)) / TYPICAL_KEY_ENTRIES, MIN_KEY_COST)


def hit_value(text: str, probability: float) -> float:
    """Expected hits per expected false hit (in typical keys) of sending `text`'s key when it is the truth's with
    `probability`: what alternatives are ranked and cut by."""
    return probability / key_cost(text)


@dataclass(frozen=True)
class HitOutcome:
    hit: bool
    false_hits: int  # entries of the drawn list matched under a key that is not the truth's
    expected_false_hits: float  # the same, expected over generated lists of that size
    keys: int
    # Expected entries under every key sent, the truth's too: another plate sharing the truth's key is a misread hit
    # an officer must clear as well. `expected_false_hits` leaves those out, which hides what widening the confusion
    # classes costs (a wider class makes the truth's own key hold more plates): docs/recognition-19.md.
    expected_false_hits_all_keys: float = 0.0


def sent_keys(reading: str | None, alternatives: Iterable[str], key: Callable[[str], str] = confusion_key) -> list[str]:
    """The keys hotlist would look up for a read: the reading's, then its alternatives' (as many as ingest sends)."""
    texts = ([reading] if reading else []) + [a for a in alternatives if a and a != reading][:INGEST_MAX_ALTERNATIVES]
    return list(dict.fromkeys(key(t) for t in texts))


def outcome(
    truth: str, reading: str | None, alternatives: Iterable[str], hot_list: Counter[str], size: int | None = None
) -> HitOutcome:
    keys = sent_keys(reading, alternatives)
    truth_key = confusion_key(truth)
    wrong = [k for k in keys if k != truth_key]
    size = sum(hot_list.values()) if size is None else size
    return HitOutcome(
        truth_key in keys,
        sum(hot_list.get(k, 0) for k in wrong),
        sum(expected_entries(k, size) for k in wrong),
        len(keys),
        sum(expected_entries(k, size) for k in keys),
    )

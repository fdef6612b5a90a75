"""Plate rules shared by recognition, hotlist and access: one normal form, one idea of a plausible plate, and the
OCR-confusion classes that misread-tolerant matching and search use.
"""

from __future__ import annotations

import re
from itertools import product

# Characters OCR confuses on plates; each class has a canonical representative (its first member).
CONFUSION_CLASSES: tuple[str, ...] = ("0ODQ", "1IL", "8B", "5S", "2Z", "6G")
_CANONICAL = {ch: cls[0] for cls in CONFUSION_CLASSES for ch in cls}
_CLASS_OF = {ch: cls for cls in CONFUSION_CLASSES for ch in cls}

MIN_LENGTH = 2
MAX_LENGTH = 8
_SEPARATORS = re.compile(r"[\s\-\.\u00b7·_/]+")
_VALID = re.compile(r"^[A-Z0-9]+$")


def normalize(text: str) -> str:
    """Upper case, separators (spaces, dashes, dots) removed: the form every service stores and compares."""
    return _SEPARATORS.sub("", text.strip().upper())


def is_plausible(plate: str, *, allow_vanity: bool = True) -> bool:
    """Could this normalized text be a US plate? Letters and digits, 2-8 long, with a digit unless vanity."""
    if not (MIN_LENGTH <= len(plate) <= MAX_LENGTH) or not _VALID.match(plate):
        return False
    has_digit = any(ch.isdigit() for ch in plate)
    return has_digit or (allow_vanity and len(plate) >= 3)


def confusion_key(plate: str) -> str:
    """Every character replaced by its confusion class's representative: two readings that differ only by
    confusable characters share a key (`ABC123` and `A8C1Z3` both give `A8C123`)."""
    return "".join(_CANONICAL.get(ch, ch) for ch in normalize(plate))


def confusable(a: str, b: str) -> bool:
    a, b = normalize(a), normalize(b)
    return len(a) == len(b) and confusion_key(a) == confusion_key(b)


def confusion_variants(plate: str, limit: int = 64) -> list[str]:
    """Readings reachable by swapping confusable characters (the plate itself first), at most `limit`."""
    plate = normalize(plate)
    choices = [_CLASS_OF.get(ch, ch) for ch in plate]
    out: list[str] = []
    for combo in product(*choices):
        out.append("".join(combo))
        if len(out) >= limit:
            break
    if plate in out:
        out.remove(plate)
    return [plate, *out][:limit]

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


# US states (and DC) as printed across the top or bottom of a plate, for reading the state off the plate.
STATE_NAMES: dict[str, str] = {
    "ALABAMA": "AL", "ALASKA": "AK", "ARIZONA": "AZ", "ARKANSAS": "AR", "CALIFORNIA": "CA", "COLORADO": "CO",
    "CONNECTICUT": "CT", "DELAWARE": "DE", "FLORIDA": "FL", "GEORGIA": "GA", "HAWAII": "HI", "IDAHO": "ID",
    "ILLINOIS": "IL", "INDIANA": "IN", "IOWA": "IA", "KANSAS": "KS", "KENTUCKY": "KY", "LOUISIANA": "LA",
    "MAINE": "ME", "MARYLAND": "MD", "MASSACHUSETTS": "MA", "MICHIGAN": "MI", "MINNESOTA": "MN",
    "MISSISSIPPI": "MS", "MISSOURI": "MO", "MONTANA": "MT", "NEBRASKA": "NE", "NEVADA": "NV",
    "NEWHAMPSHIRE": "NH", "NEWJERSEY": "NJ", "NEWMEXICO": "NM", "NEWYORK": "NY", "NORTHCAROLINA": "NC",
    "NORTHDAKOTA": "ND", "OHIO": "OH", "OKLAHOMA": "OK", "OREGON": "OR", "PENNSYLVANIA": "PA",
    "RHODEISLAND": "RI", "SOUTHCAROLINA": "SC", "SOUTHDAKOTA": "SD", "TENNESSEE": "TN", "TEXAS": "TX",
    "UTAH": "UT", "VERMONT": "VT", "VIRGINIA": "VA", "WASHINGTON": "WA", "WESTVIRGINIA": "WV",
    "WISCONSIN": "WI", "WYOMING": "WY", "DISTRICTOFCOLUMBIA": "DC",
}  # fmt: skip
_BY_LENGTH = sorted(STATE_NAMES, key=len, reverse=True)

# Words of state slogans, dealer frames and stickers: text on or around a plate that is not the plate number.
_NON_PLATE_WORDS = (
    "LAKES", "LINCOLN", "SUNSHINE", "EMPIRE", "GARDEN", "STATE", "LAND", "EXPLORE", "AMERICA", "FREEDOM",
    "GRAND", "CANYON", "COUNTY", "DEALER", "MOTOR", "AUTO", "SALES", "FORD", "TOYOTA", "HONDA", "CHEVROLET",
    "NISSAN", "WWW", ".COM", "CALL", "TEMPORARY", "EXPIRES", "MONTH", "YEAR", "VALID", "REGISTRATION",
)  # fmt: skip
_DATE_OR_TIME = re.compile(
    r"^(\d{1,2}[/\-.]\d{1,2}([/\-.]\d{2,4})?|\d{4}[/\-.]\d{1,2}[/\-.]\d{1,2}|\d{1,2}:\d{2}(:\d{2})?(AM|PM)?)$"
)
_MONTH = re.compile(r"^(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*\d{0,4}$")
_YEAR_STICKER = re.compile(r"^(19|20)\d{2}$|^\d{1,2}$")
_STAMP = re.compile(r"^20[0-4]\d(0[1-9]|1[0-2])\d{0,2}$")  # a camera's date stamp: YYYYMM[D[D]]


def state_from_text(text: str) -> str | None:
    """The state code when `text` (a line read off a plate) names a state, else None."""
    letters = re.sub(r"[^A-Z]", "", text.upper())
    return STATE_NAMES.get(letters) if len(letters) >= 4 else None


def state_in_text(text: str) -> str | None:
    """The state named anywhere in `text` (a band of a plate read whole: the name beside stickers or a county),
    the longest name first ("WESTVIRGINIA" before "VIRGINIA")."""
    letters = re.sub(r"[^A-Z]", "", text.upper())
    exact = STATE_NAMES.get(letters) if len(letters) >= 4 else None
    if exact is not None:
        return exact
    for name in _BY_LENGTH:
        if name in letters:
            return STATE_NAMES[name]
    return None


def is_non_plate_text(raw: str) -> bool:
    """Dates, times, registration stickers, state names and slogans, dealer frames: never a plate number."""
    text = raw.strip().upper()
    compact = normalize(text)
    if not compact:
        return True
    if (
        _DATE_OR_TIME.match(re.sub(r"\s+", "", text))
        or _MONTH.match(compact)
        or _YEAR_STICKER.match(compact)
        or _STAMP.match(compact)
    ):
        return True
    if state_from_text(compact) is not None:
        return True
    spaced = re.sub(r"\s+", "", text)
    return any(word in spaced for word in _NON_PLATE_WORDS)


def is_plate_text(raw: str, *, allow_vanity: bool = True) -> bool:
    """A plausible plate number that is not a date, time, sticker, state name, slogan or dealer frame."""
    return is_plausible(normalize(raw), allow_vanity=allow_vanity) and not is_non_plate_text(raw)

"""Does a grant cover a query? Plate patterns (with wildcards, misread-tolerant), time windows, areas.

Pure functions: each check returns None when the query is covered, else the reason the caller is told.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from shared.plates import confusion_key, normalize

_PATTERN = re.compile(r"^[A-Z0-9*?]+$")
MAX_PLATE_LENGTH = 8


@dataclass(frozen=True)
class Area:
    lat: float
    lon: float
    radius_m: float


def normalize_pattern(text: str) -> str:
    """A plate pattern in normal form: `*` any run of characters, `?` one character. At least two known
    characters, so a pattern never means "every plate"."""
    pattern = normalize(text)
    pattern = re.sub(r"\*+", "*", pattern)
    if not _PATTERN.match(pattern):
        raise ValueError(f"plate pattern {text!r}: letters, digits, '*' and '?' only")
    known = sum(ch.isalnum() for ch in pattern)
    if known < 2:
        raise ValueError(f"plate pattern {text!r} needs at least two known characters")
    if len(pattern.replace("*", "")) > MAX_PLATE_LENGTH:
        raise ValueError(f"plate pattern {text!r} is longer than a plate")
    return pattern


@lru_cache(maxsize=1024)
def _symbolic(grant_pattern: str) -> re.Pattern[str]:
    # Matches a query *pattern* only if every plate that pattern matches also matches the grant's: the grant's
    # `?` stands for one known character or one `?` (never a `*`, which may be longer); its `*` for anything.
    parts = []
    for ch in grant_pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(r"[A-Z0-9?]")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts))


def pattern_covers(grant_pattern: str, query_pattern: str, *, tolerant: bool) -> bool:
    if tolerant:
        # Readings that differ only by OCR-confusable characters are the same plate to a tolerant grant.
        grant_pattern, query_pattern = confusion_key(grant_pattern), confusion_key(query_pattern)
    return _symbolic(grant_pattern).fullmatch(query_pattern) is not None


def plates_reason(
    grant_plates: list[str], grant_tolerant: bool, query_plates: list[str], query_tolerant: bool
) -> str | None:
    if query_tolerant and not grant_tolerant:
        return "the grant does not allow misread-tolerant matching"
    if not grant_plates:
        return None  # an area grant: any plate inside the area
    if not query_plates:
        return f"the grant covers only plates {', '.join(grant_plates)}: name plates in the query"
    outside = [q for q in query_plates if not any(pattern_covers(g, q, tolerant=grant_tolerant) for g in grant_plates)]
    if outside:
        return f"plates {', '.join(outside)} are outside the grant's plates ({', '.join(grant_plates)})"
    return None


def window_reason(grant_start: datetime, grant_end: datetime, start: datetime, end: datetime) -> str | None:
    if start < grant_start or end > grant_end:
        return (
            f"the query's window {start.isoformat()}..{end.isoformat()} is outside the grant's dates "
            f"{grant_start.isoformat()}..{grant_end.isoformat()}"
        )
    return None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def area_reason(grant: Area | None, query: Area | None, *, grant_plates: Sequence[str] = ()) -> str | None:
    if query is None:
        if grant is not None:
            if grant_plates:
                return (
                    f"the grant covers plates {', '.join(grant_plates)} only inside an area: "
                    "give the query an area inside it"
                )
            return "the grant covers only an area: give the query an area inside it"
        return None
    if grant is None:
        return None
    if distance_m(grant.lat, grant.lon, query.lat, query.lon) + query.radius_m > grant.radius_m + 1.0:
        return "the query's area is outside the grant's area"
    return None


# ---- location history (13.824 subd. 2(d)): the one rule, used by the request form and by every search -------

LOCATION_HISTORY_SPAN = timedelta(days=1)


def is_location_history(plates: Sequence[str], start: datetime, end: datetime, has_area: bool) -> bool:
    """A plate search is a location history when it spans more than a day (where the vehicle went), or names an
    area (when the vehicle was there). An area-only search is not: it asks who passed a place, and keeps the
    area limits of the request form instead."""
    return bool(plates) and (has_area or end - start > LOCATION_HISTORY_SPAN)


def location_history_reason(
    plates: Sequence[str], start: datetime, end: datetime, has_area: bool, *, warrant: str | None, exigency: str | None
) -> str | None:
    """Why a query or request may not go ahead: a location history without a warrant or documented exigency."""
    if is_location_history(plates, start, end, has_area) and not (warrant or exigency):
        what = "with an area" if has_area else "spanning more than one day"
        return (
            f"a plate search {what} is a location history: it needs a warrant number or an exigency attestation "
            "(Minn. Stat. 13.824 subd. 2(d); docs/access.md, Location history)"
        )
    return None

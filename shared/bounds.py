"""What PostgreSQL can store and the statute has use for: the bounds numbers and dates from outside are held to."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

INT64_MAX = 2**63 - 1  # a bigint (event ids, versions)
# The largest plate photo we take: a 4000x3000 frame (12 Mpx; ALPR cameras send 1-5 Mpx, a phone's evidence photo
# 12). Refused above this on the header, before decoding: decoding costs ~6 MB and ~23 ms per Mpx here (a 38 KB PNG
# of 6300x6300 took +229 MB and 0.7 s to decode; 4000x3000 +71 MB and 0.27 s; docs/poison.md).
MAX_IMAGE_PIXELS = 12_000_000
Int64 = Annotated[int, Field(ge=0, le=INT64_MAX)]


def not_in_the_future(value: date) -> date:
    """A date something happened (a reader placed, a course completed): at most a day ahead (time zones), never
    years ahead, where it would stand in force at once and block every correction dated before it."""
    if value > datetime.now(UTC).date() + timedelta(days=1):
        raise ValueError("a date in the future: record a change once it has happened")
    return value


PastDate = Annotated[date, AfterValidator(not_in_the_future)]

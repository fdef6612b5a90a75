"""The terms of a hold (Minn. Stat. 13.824 and the policy's retention section), one definition for the services
that keep held data: ingest holds reads, hotlist holds hits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.text import CleanInput

# 13.82: private by default; active investigative (or public) where a case says so.
Classification = Literal["private", "public", "active_investigative"]
# investigation: the agency's case; exculpatory: a data subject's written request (13.824 subd. 3(b)).
HoldKind = Literal["investigation", "exculpatory"]


class HoldTerms(CleanInput):
    kind: HoldKind = "investigation"
    case_number: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=3, max_length=4000)
    classification: Classification = "active_investigative"


class HoldRelease(CleanInput):
    reason: str = Field(min_length=3, max_length=4000)

"""The one table from NCIC/BCA file codes to categories, and whether a category concerns the vehicle or its
registered owner (an owner hit carries "the driver may not be the registered owner")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Concerns = Literal["vehicle", "registered_owner"]
OWNER_WARNING = "The driver may not be the registered owner."


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    label: str
    concerns: Concerns


_TABLE = (
    Category("V", "stolen_vehicle", "Stolen vehicle", "vehicle"),
    Category("P", "stolen_plate", "Stolen license plate", "vehicle"),
    Category("F", "felony_vehicle", "Felony vehicle", "vehicle"),
    Category("R", "canadian_cpic", "Canadian (CPIC) record", "vehicle"),
    Category("A", "amber_alert", "AMBER alert", "vehicle"),
    Category("W", "wanted_person", "Wanted person (registered owner)", "registered_owner"),
    Category("H", "protection_order", "Protection order (registered owner)", "registered_owner"),
    Category("M", "missing_person", "Missing person (registered owner)", "registered_owner"),
    Category("L", "violent_person", "Violent person (registered owner)", "registered_owner"),
    Category("T", "gang_terrorist", "Gang or terrorist member (registered owner)", "registered_owner"),
    Category("C", "supervised_release", "Supervised release (registered owner)", "registered_owner"),
    Category("X", "sex_offender", "Sex-offender registry (registered owner)", "registered_owner"),
    Category("N", "immigration_violator", "Immigration violator (registered owner)", "registered_owner"),
    Category("K", "protective_interest", "Protective interest (registered owner)", "registered_owner"),
    # Minnesota driver-status records: the registered owner's license.
    Category("D", "license_revoked", "Registered owner's license revoked", "registered_owner"),
    Category("S", "license_suspended", "Registered owner's license suspended", "registered_owner"),
    Category(
        "Q", "license_cancelled", "Registered owner's license cancelled (inimical to public safety)", "registered_owner"
    ),
)
CATEGORIES: dict[str, Category] = {c.code: c for c in _TABLE}
# Agency-list entries: an active criminal investigation (13.824 subd. 3).
INVESTIGATION = Category("I", "investigation", "Active criminal investigation (agency list)", "vehicle")


def category_of(code: str) -> Category | None:
    return CATEGORIES.get(code)

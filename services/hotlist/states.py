"""The state and province codes an NCIC license-state field (LIS) may hold; a row with any other code is bad.

US states and DC, US territories and freely associated states, US government plates, Canadian provinces and
territories (the NCIC codes and the postal ones), and Mexico. Extend it here, in one place.
"""

from __future__ import annotations

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)
US_TERRITORIES = frozenset("AS AM GU MP PR VI FM MH PW".split())
US_GOVERNMENT = frozenset({"US"})
CANADA = frozenset("AB BC MB NB NF NL NS NT NU ON PE PQ QC SK SN YT".split())
MEXICO = frozenset({"MX"})

STATE_CODES = US_STATES | US_TERRITORIES | US_GOVERNMENT | CANADA | MEXICO

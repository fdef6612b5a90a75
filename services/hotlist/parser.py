"""The strict parser of the Minnesota NCIC hot-list extract (format documented in docs/hotlist.md).

Each good row becomes one CSV line ready for COPY; each bad row is reported with its line number and why. The fast
path is one regular expression per line; a line it refuses goes through the slow path that names the reason. Each
row is decoded and judged on its own: a byte that is not ASCII makes its row bad, not the file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from services.hotlist.categories import CATEGORIES
from services.hotlist.states import STATE_CODES
from shared.plates import normalize

HEADER = (
    "NIC",
    "ORI",
    "ENTRY_DATE",
    "PLATE",
    "STATE",
    "PLATE_YEAR",
    "PLATE_TYPE",
    "VEHICLE_YEAR",
    "MAKE",
    "MODEL",
    "STYLE",
    "COLOR",
)
# The same columns under their NCIC field codes (an extract may name them either way, column by column).
NCIC_HEADER = ("NIC", "ORI", "ENTRY_DATE", "LIC", "LIS", "LIY", "LIT", "VYR", "VMA", "VMO", "VST", "VCO")
# Columns COPY fills, in the file's own order: a good line is loaded as it stands (PostgreSQL reads YYYYMMDD dates;
# the category code is a generated column, the NIC's first letter), so the parser writes no new text per row.
COPY_COLUMNS = (
    "nic",
    "ori",
    "entry_date",
    "plate",
    "state",
    "plate_year",
    "plate_type",
    "vehicle_year",
    "make",
    "model",
    "style",
    "color",
)
MAX_REPORTED_BAD_ROWS = 1000

_CODES = "".join(sorted(CATEGORIES))
# The fast path: one match validates a whole row. NIC, date, plate and state are captured (the rest is checked here).
# ASCII only: `\d` matches 0-9 alone, so a row with any other byte always goes to the slow path.
_YEAR = r"(?:(?:19|20)\d\d|)"
_LINE = re.compile(
    rf"^([{_CODES}]\d{{9}}),[A-Z]{{2}}[A-Z0-9]{{7}},(\d{{8}}),([A-Z0-9]{{2,8}}),([A-Z]{{2}}),"
    rf"{_YEAR},(?:[A-Z0-9]{{2}}|),{_YEAR},(?:[A-Z0-9]{{1,4}}|),(?:[A-Z0-9]{{1,6}}|),(?:[A-Z0-9]{{2}}|),"
    r"(?:[A-Z0-9/]{3,7}|)$",
    re.ASCII,
)
_YEAR_MIN, _YEAR_MAX = 1900, 2099


@dataclass
class BadRow:
    line: int
    reason: str


@dataclass
class Parsed:
    csv: bytes
    good: int
    bad_count: int
    bad: list[BadRow] = field(default_factory=list)  # the first MAX_REPORTED_BAD_ROWS
    unknown_codes: dict[str, int] = field(default_factory=dict)
    sha256: str = ""

    @property
    def bad_share(self) -> float:
        total = self.good + self.bad_count
        return self.bad_count / total if total else 1.0


class FormatError(ValueError):
    """The file as a whole is not the extract (no header, not text)."""


def _why(fields: list[str], today: date) -> str:
    """The slow path: name what is wrong with a row the fast path refused."""
    if len(fields) != len(HEADER):
        return f"expected {len(HEADER)} fields, found {len(fields)}"
    nic, ori, entry, plate, state, pyear, ptype, vyear, make, model, style, color = fields
    if not nic:
        return "NIC number is empty"
    if nic[0] not in CATEGORIES:
        return f"unknown file code {nic[0]!r}"
    if not re.fullmatch(r"\d{9}", nic[1:]):
        return f"NIC number {nic!r} is not a file code and 9 digits"
    if not re.fullmatch(r"[A-Z]{2}[A-Z0-9]{7}", ori):
        return f"ORI {ori!r} is not 9 characters (2 letters, then letters or digits)"
    if not re.fullmatch(r"\d{8}", entry):
        return f"entry date {entry!r} is not YYYYMMDD"
    if not plate.strip():
        return "plate is empty"
    if not re.fullmatch(r"[A-Z]{2}", state):
        return f"state {state!r} is not a 2-letter code"
    for name, value in (("plate year", pyear), ("vehicle year", vyear)):
        if value and not re.fullmatch(r"\d{4}", value):
            return f"{name} {value!r} is not 4 digits"
        if value and not (_YEAR_MIN <= int(value) <= _YEAR_MAX):
            return f"{name} {value!r} is out of range"
    if ptype and not re.fullmatch(r"[A-Z0-9]{2}", ptype):
        return f"plate type {ptype!r} is not 2 characters"
    for name, value, pattern in (
        ("make", make, r"[A-Z0-9]{1,4}"),
        ("model", model, r"[A-Z0-9]{1,6}"),
        ("style", style, r"[A-Z0-9]{2}"),
        ("color", color, r"[A-Z0-9/]{3,7}"),
    ):
        if value and not re.fullmatch(pattern, value):
            return f"{name} {value!r} is malformed"
    if re.search(r"[^A-Z0-9 \-]", plate):
        return f"plate {plate!r} has characters other than letters, digits, spaces and dashes"
    return f"plate {plate!r} is not a plausible plate (2-8 letters and digits)"


def _repair(line: str) -> str:
    """What the fast path refuses but a strict reading admits: surrounding blanks, a plate written with spaces or
    dashes. The repaired line goes through the fast path again."""
    fields = line.strip().split(",")
    if len(fields) == len(HEADER):
        fields = [f.strip() for f in fields]
        fields[3] = normalize(fields[3])
    return ",".join(fields)


CHUNK_LINES = 50_000


def parse(body: bytes, *, today: date | None = None, sink: Callable[[bytes], None] | None = None) -> Parsed:
    """Parse a whole (decompressed) extract. CPU-bound: call it in a thread.

    With `sink`, good rows go to it in chunks as they are parsed (so COPY runs while parsing goes on) and
    `Parsed.csv` is empty; without, `Parsed.csv` holds them all."""
    today = today or date.today()
    digest = hashlib.sha256(body).hexdigest()
    # bytes.upper() changes ASCII letters only, so a byte that is not ASCII stays as it came.
    upper = body.upper()
    try:
        lines = upper.decode("ascii").splitlines()
    except UnicodeDecodeError:
        # Latin-1 maps each byte to one character: every row keeps its fields and columns, and is judged alone.
        lines = [line.decode("latin-1") for line in upper.splitlines()]
    if not lines:
        raise FormatError("empty file")
    if not lines[0].isascii():
        raise FormatError("line 1: the header is not ASCII text")
    header = [h.strip() for h in lines[0].split(",")]
    columns = zip(HEADER, NCIC_HEADER, strict=True)
    if len(header) != len(HEADER) or any(h not in names for h, names in zip(header, columns, strict=True)):
        raise FormatError(
            f"line 1: header must be {','.join(HEADER)} (or the NCIC field codes {','.join(NCIC_HEADER)})"
        )

    good_lines: list[str] = []
    keep = good_lines.append
    sent = 0
    bad_count = 0
    bad: list[BadRow] = []
    unknown: dict[str, int] = {}
    seen: set[str] = set()
    add_seen = seen.add
    dates: dict[str, bool] = {}
    match = _LINE.match

    def reject(number: int, reason: str) -> None:
        nonlocal bad_count
        bad_count += 1
        if len(bad) < MAX_REPORTED_BAD_ROWS:
            bad.append(BadRow(number, reason))

    def real_date(entry: str) -> bool:
        try:
            return datetime.strptime(entry, "%Y%m%d").date() <= today
        except ValueError:
            return False

    for number, line in enumerate(lines[1:], start=2):
        m = match(line)
        if m is None:
            if not line.isascii():
                column = next(i for i, ch in enumerate(line, start=1) if ord(ch) > 127)
                reject(number, f"byte 0x{ord(line[column - 1]):02X} at column {column} is not ASCII text")
                continue
            if not line.strip():
                continue  # blank lines (a trailing newline, say) are not rows
            line = _repair(line)
            m = match(line)
            if m is None:
                fields = line.split(",")
                code = fields[0][:1]
                if code and code.isalpha() and code not in CATEGORIES:
                    unknown[code] = unknown.get(code, 0) + 1
                reject(number, _why(fields, today))
                continue
        nic, entry, plate, state = m.groups()
        ok = dates.get(entry)
        if ok is None:
            ok = dates[entry] = real_date(entry)
        if not ok:
            reject(number, f"entry date {entry!r} is not a real date up to today")
            continue
        if state not in STATE_CODES:
            reject(number, f"state {state!r} is not a known state or province code")
            continue
        if len(plate) == 2 and plate.isalpha():
            reject(number, f"plate {plate!r} is not a plausible plate (a 2-character plate has a digit)")
            continue
        if nic in seen:
            reject(number, f"NIC number {nic} appears twice")
            continue
        add_seen(nic)
        keep(line)
        if sink is not None and len(good_lines) >= CHUNK_LINES:
            sent += len(good_lines)
            good_lines.append("")
            sink("\n".join(good_lines).encode("ascii"))
            good_lines.clear()
    good = sent + len(good_lines)
    good_lines.append("")
    csv = "\n".join(good_lines).encode("ascii") if len(good_lines) > 1 else b""
    if sink is not None:
        if csv:
            sink(csv)
        csv = b""
    return Parsed(
        csv=csv,
        good=good,
        bad_count=bad_count,
        bad=bad,
        unknown_codes=unknown,
        sha256=digest,
    )

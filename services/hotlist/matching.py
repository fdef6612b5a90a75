"""In-memory matching: an immutable snapshot per list version, swapped whole, so a match never sees half a list.

The index is one dict keyed by the plate's confusion key (shared/plates.py): an exact match and a misread-tolerant
match are the same lookup; comparing the plates then tells which it was. Values are compact "nic,code,plate,state"
strings (a tuple of them when several entries share a key) to keep 1 M entries small.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.plates import confusion_key, normalize

log = structlog.get_logger(__name__)

Index = dict[str, "str | tuple[str, ...]"]


@dataclass(frozen=True)
class BcaCandidate:
    nic: str
    code: str
    plate: str
    state: str
    match: Literal["exact", "misread"]


@dataclass(frozen=True)
class AgencyRow:
    id: str
    list_name: str
    plate: str
    state: str | None
    priority: int
    covert: bool
    owner: str
    expires_at: datetime
    agency: str = ""  # the list's agency: its entries match that agency's reads only


@dataclass(frozen=True)
class Snapshot:
    version: int
    loaded_at: datetime
    verified_at: datetime
    entries: int
    index: Index


def build_index(csv_rows: bytes) -> tuple[Index, int]:
    """From "nic,code,plate,state" lines. CPU-bound: call in a thread."""
    index: Index = {}
    count = 0
    for line in csv_rows.decode("ascii").splitlines():
        if not line:
            continue
        plate = line.split(",", 3)[2]
        key = confusion_key(plate)
        have = index.get(key)
        if have is None:
            index[key] = line
        elif isinstance(have, str):
            index[key] = (have, line)
        else:
            index[key] = (*have, line)
        count += 1
    return index, count


def lookup(index: Index, plate: str, alternatives: list[str]) -> list[BcaCandidate]:
    read = normalize(plate)
    keys = {confusion_key(read)}
    keys.update(confusion_key(a) for a in alternatives if a)
    found: dict[str, BcaCandidate] = {}
    for key in keys:
        have = index.get(key)
        if have is None:
            continue
        for line in (have,) if isinstance(have, str) else have:
            nic, code, entry_plate, state = line.split(",")
            kind: Literal["exact", "misread"] = "exact" if entry_plate == read else "misread"
            prior = found.get(nic)
            if prior is None or (prior.match == "misread" and kind == "exact"):
                found[nic] = BcaCandidate(nic, code, entry_plate, state, kind)
    return list(found.values())


def lookup_agency(
    rows: dict[str, list[AgencyRow]], plate: str, alternatives: list[str], now: datetime, agency: str | None = None
):
    read = normalize(plate)
    keys = {confusion_key(read)}
    keys.update(confusion_key(a) for a in alternatives if a)
    out: list[tuple[AgencyRow, Literal["exact", "misread"]]] = []
    for key in keys:
        for row in rows.get(key, ()):
            # Expired entries stop matching at once, refresh or not; another agency's list never sees our reads.
            if row.expires_at > now and row.agency == (agency or ""):
                out.append((row, "exact" if row.plate == read else "misread"))
    return out


@dataclass
class Matcher:
    """What one worker matches against; `refresh` follows the database's current version and agency entries."""

    snapshot: Snapshot | None = None
    agency: dict[str, list[AgencyRow]] = field(default_factory=dict)
    _agency_stamp: tuple[object, ...] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self, engine: AsyncEngine) -> None:
        async with self._lock:
            await self._refresh_version(engine)
            await self._refresh_agency(engine)

    async def _refresh_version(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, loaded_at, verified_at, entries FROM hotlist.list_versions "
                        "WHERE is_current AND NOT dropped"
                    )
                )
            ).first()
            if row is None:
                return
            current = self.snapshot
            if current is not None and current.version == row.id:
                if current.verified_at != row.verified_at:
                    self.snapshot = Snapshot(row.id, row.loaded_at, row.verified_at, current.entries, current.index)
                return
            raw = await conn.get_raw_connection()
            buf = io.BytesIO()
            await raw.driver_connection.copy_from_query(  # type: ignore[union-attr]
                f"SELECT nic, code, plate, state FROM hotlist.bca_entries WHERE version_id = {int(row.id)}",
                output=buf,
                format="csv",
            )
        index, count = await asyncio.to_thread(build_index, buf.getvalue())
        self.snapshot = Snapshot(row.id, row.loaded_at, row.verified_at, count, index)
        log.info("hotlist_version_loaded", version=row.id, entries=count)

    async def _refresh_agency(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            stamp = (
                await conn.execute(
                    text(
                        "SELECT (SELECT max(changed_at) FROM hotlist.agency_entries), "
                        "(SELECT count(*) FROM hotlist.agency_entries), "
                        "(SELECT max(changed_at) FROM hotlist.agency_lists)"
                    )
                )
            ).one()
            if tuple(stamp) == self._agency_stamp:
                return
            rows = await conn.execute(
                text(
                    "SELECT e.id, l.name, e.plate, e.state, l.priority, l.covert, l.owner, l.agency, "
                    "least(e.expires_at, coalesce(l.expires_at, e.expires_at)) AS expires_at "
                    "FROM hotlist.agency_entries e JOIN hotlist.agency_lists l ON l.id = e.list_id "
                    "WHERE e.removed_at IS NULL AND e.expires_at > now() "
                    "AND (l.expires_at IS NULL OR l.expires_at > now())"
                )
            )
            agency: dict[str, list[AgencyRow]] = {}
            for r in rows:
                row = AgencyRow(
                    str(r.id), r.name, r.plate, r.state, r.priority, r.covert, r.owner, r.expires_at, r.agency
                )
                agency.setdefault(confusion_key(r.plate), []).append(row)
        self.agency = agency
        self._agency_stamp = tuple(stamp)

    def age_s(self) -> float | None:
        if self.snapshot is None:
            return None
        return (datetime.now(UTC) - self.snapshot.verified_at).total_seconds()

"""The hotlist's logic: matching reads into stored hits, verification and disposition, agency lists, and the
lists for the cars (full and delta). Functions take a session and flush; the route's session commits."""

from __future__ import annotations

import asyncio
import gzip
import io
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.hotlist import metrics
from services.hotlist.categories import CATEGORIES, INVESTIGATION, OWNER_WARNING, category_of
from services.hotlist.matching import Matcher, lookup, lookup_agency
from services.hotlist.models import AgencyEntry, AgencyList, Hit, HitDisposition, HitVerification
from services.hotlist.schemas import (
    AgencyEntryIn,
    AgencyEntryOut,
    AgencyListIn,
    DispositionIn,
    DispositionOut,
    HitDetail,
    HitOut,
    MatchRequest,
    MatchResponse,
    VerificationIn,
    VerificationOut,
    VersionOut,
)
from shared import audit
from shared.auth import Principal
from shared.errors import Conflict, Gone, NotFound, Unprocessable
from shared.scoping import Scope
from shared.settings import Settings

log = structlog.get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]

# The list a car downloads: enough to match and to describe the vehicle for the officer's check.
CAR_COLUMNS = ["nic", "code", "plate", "state", "plate_type", "vehicle_year", "make", "model", "style", "color"]


def _state_check(read_state: str | None, entry_state: str | None) -> str:
    if not read_state or not entry_state:
        return "unknown"
    return "match" if read_state == entry_state else "mismatch"


def hit_out(hit: Hit) -> HitOut:
    return hit_out_row(hit.model_dump())


def hit_out_row(h: dict[str, Any]) -> HitOut:
    return HitOut(
        hit_id=h["id"],
        read_id=h["read_id"],
        entry_id=h["entry_id"],
        list=h["list_name"],
        list_version=h["list_version"],
        category=h["category"],
        category_label=h["category_label"],
        concerns=h["concerns"],
        owner_warning=OWNER_WARNING if h["concerns"] == "registered_owner" else None,
        match=h["match"],
        read_plate=h["read_plate"],
        entry_plate=h["entry_plate"],
        entry_state=h["entry_state"],
        state_check=h["state_check"],
        covert=h["covert"],
        list_owner=h.get("list_owner"),
        priority=h["priority"],
    )


def version_out(matcher: Matcher, settings: Settings) -> VersionOut:
    snap = matcher.snapshot
    age = matcher.age_s()
    return VersionOut(
        version=snap.version if snap else None,
        loaded_at=snap.loaded_at if snap else None,
        age_s=round(age, 1) if age is not None else None,
        stale=age is None or age > settings.hotlist_stale_after_s,
        entries=snap.entries if snap else 0,
    )


def _hit_row(**values: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "covert": False, "priority": 0, "list_owner": None, "past_read": False, **values}


def find_hits(
    matcher: Matcher, req: MatchRequest, now: datetime, alerting: Collection[str] | None = None
) -> tuple[int | None, list[dict[str, Any]]]:
    """Pure and in memory: the snapshot is taken once, so every hit of a read comes from one version. Entries of a
    category not in `alerting` (settings.hotlist_alert_categories; None: every one) stay loaded and raise no hit.

    Hits are plain rows (not ORM objects): building ORM instances cost more than the lookup itself."""
    snap = matcher.snapshot
    hits: list[dict[str, Any]] = []
    common = {
        "read_id": req.read_id,
        "read_plate": req.plate,
        "read_state": req.state,
        "agency": req.agency,
        "custodian": req.agency or "",  # the read's agency (an agency list matches its own agency's reads only)
        "unit": req.unit,
        "officer": req.officer,
        "captured_at": req.captured_at,
    }
    if snap is not None:
        for cand in lookup(snap.index, req.plate, req.alternatives):
            cat = category_of(cand.code)
            if cat is None:  # the parser admits known codes only; a code dropped from the table since
                continue
            if alerting is not None and cat.name not in alerting:  # not a category the policy matches against
                continue
            hits.append(
                _hit_row(
                    entry_id=cand.nic,
                    list_name="bca",
                    list_version=snap.version,
                    category=cat.name,
                    category_label=cat.label,
                    concerns=cat.concerns,
                    match=cand.match,
                    entry_plate=cand.plate,
                    entry_state=cand.state,
                    state_check=_state_check(req.state, cand.state),
                    **common,
                )
            )
    for row, kind in lookup_agency(matcher.agency, req.plate, req.alternatives, now, req.agency):
        if alerting is not None and INVESTIGATION.name not in alerting:
            break
        hits.append(
            _hit_row(
                entry_id=row.id,
                list_name=row.list_name,
                list_version=None,
                category=INVESTIGATION.name,
                category_label=INVESTIGATION.label,
                concerns=INVESTIGATION.concerns,
                match=kind,
                entry_plate=row.plate,
                entry_state=row.state,
                state_check=_state_check(req.state, row.state),
                covert=row.covert,
                priority=row.priority,
                # The list's custodian agency, never the free-text `owner`: covert hits go to that agency's stream.
                list_owner=row.agency or None,
                **common,
            )
        )
    # Highest priority first, exact before misread.
    hits.sort(key=lambda h: (-h["priority"], h["match"] != "exact"))
    return (snap.version if snap else None), hits


async def match(sessions: Sessions, matcher: Matcher, settings: Settings, req: MatchRequest) -> MatchResponse:
    return (await match_many(sessions, matcher, settings, [req]))[0]


async def match_many(
    sessions: Sessions, matcher: Matcher, settings: Settings, reqs: list[MatchRequest]
) -> list[MatchResponse]:
    """Match many reads with one INSERT of their hits: ingest sends a whole group-commit batch in one call, so the
    cost of a call (HTTP, token) is paid per batch, not per read. A session is opened only when there are hits to
    store: most batches have none."""
    now = datetime.now(UTC)
    found = [find_hits(matcher, req, now, settings.hotlist_alert_categories) for req in reqs]
    hits = [h for _, hs in found for h in hs]
    if hits:
        async with sessions() as session:
            await _store_hits(session, hits)
            await session.commit()
    stale = version_out(matcher, settings).stale
    return [
        MatchResponse(list_version=version, stale=stale, hits=[hit_out_row(h) for h in hs]) for version, hs in found
    ]


async def _store_hits(session: AsyncSession, hits: list[dict[str, Any]]) -> None:
    # Idempotent per (read, list, entry): a retried match answers the hits stored the first time.
    stmt = (
        pg_insert(Hit)
        .values(hits)
        .on_conflict_do_nothing(index_elements=["read_id", "list_name", "entry_id"])
        .returning(col(Hit.id))
    )
    stored = set((await session.execute(stmt)).scalars())
    metrics.count_new_hits(hits, stored)
    for h in hits:
        if h["id"] in stored:  # 13.824 subd. 7(b): each hit raised, once (a retried match raises nothing new)
            await audit.record(
                session, service="hotlist", action="hit.raise", actor="hotlist.match", agency=h["custodian"] or None,
                object_type="hit", object_ids=[str(h["id"])],
                details={"read_id": str(h["read_id"]), "list_name": h["list_name"], "category": h["category"],
                         "unit": h.get("unit"), "covert": bool(h.get("covert"))},
            )  # fmt: skip
    if len(stored) < len(hits):
        again = list({h["read_id"] for h in hits if h["id"] not in stored})
        rows = await session.execute(
            select(Hit.read_id, Hit.list_name, Hit.entry_id, Hit.id, Hit.list_version).where(
                col(Hit.read_id).in_(again)
            )
        )
        first = {(r.read_id, r.list_name, r.entry_id): (r.id, r.list_version) for r in rows}
        for h in hits:
            if h["id"] not in stored:
                h["id"], h["list_version"] = first[(h["read_id"], h["list_name"], h["entry_id"])]


# --- verification and disposition -------------------------------------------------------------------------


async def get_hit(session: AsyncSession, scope: Scope, hit_id: uuid.UUID) -> Hit:
    hit = await session.get(Hit, hit_id)
    return scope.check(hit, f"hit {hit_id}", hit.custodian if hit else None)


async def hit_detail(session: AsyncSession, hit: Hit) -> HitDetail:
    vs = (
        await session.exec(
            select(HitVerification).where(HitVerification.hit_id == hit.id).order_by(col(HitVerification.at))
        )
    ).all()
    ds = (
        await session.exec(
            select(HitDisposition).where(HitDisposition.hit_id == hit.id).order_by(col(HitDisposition.at))
        )
    ).all()
    return HitDetail(
        **hit_out(hit).model_dump(),
        read_state=hit.read_state,
        agency=hit.agency,
        unit=hit.unit,
        captured_at=hit.captured_at,
        created_at=hit.created_at,
        past_read=hit.past_read,
        verifications=[verification_out(v) for v in vs],
        dispositions=[disposition_out(d) for d in ds],
    )


def verification_out(v: HitVerification) -> VerificationOut:
    return VerificationOut(
        id=v.id,
        hit_id=v.hit_id,
        read_accurate=v.read_accurate,
        state_matches=v.state_matches,
        still_current=v.still_current,
        checked_version=v.checked_version,
        by=v.by,
        at=v.at,
        confirmed=v.read_accurate and v.state_matches and v.still_current,
    )


def disposition_out(d: HitDisposition) -> DispositionOut:
    return DispositionOut(
        id=d.id, hit_id=d.hit_id, valid=d.valid, action=d.action, notes=d.notes, corrects=d.corrects, by=d.by, at=d.at
    )


async def still_current(session: AsyncSession, hit: Hit) -> tuple[bool, int | None]:
    """Is the hit's entry in force now? BCA: present, same plate and state, in the newest version."""
    if hit.list_name == "bca":
        row = (
            await session.execute(
                text(
                    "SELECT v.id, EXISTS (SELECT 1 FROM hotlist.bca_entries e WHERE e.version_id = v.id "
                    "AND e.nic = :nic AND e.plate = :plate AND e.state = :state) AS present "
                    "FROM hotlist.list_versions v WHERE v.is_current"
                ),
                {"nic": hit.entry_id, "plate": hit.entry_plate, "state": hit.entry_state},
            )
        ).first()
        if row is None:
            return False, None
        return bool(row.present), int(row.id)
    entry = await session.get(AgencyEntry, uuid.UUID(hit.entry_id))
    active = entry is not None and entry.removed_at is None and entry.expires_at > datetime.now(UTC)
    return active, None


async def verify(session: AsyncSession, hit: Hit, body: VerificationIn, principal: Principal) -> HitVerification:
    current, version = await still_current(session, hit)
    v = HitVerification(
        hit_id=hit.id,
        read_accurate=body.read_accurate,
        state_matches=body.state_matches,
        still_current=current,
        checked_version=version,
        by=principal.subject,
    )
    session.add(v)
    await session.flush()
    await session.refresh(v)
    return v


async def dispose(session: AsyncSession, hit: Hit, body: DispositionIn, principal: Principal) -> HitDisposition:
    # One disposition per hit at a time: lock the hit row so two officers cannot both enter the first one.
    await session.execute(text("SELECT 1 FROM hotlist.hits WHERE id = :id FOR UPDATE"), {"id": hit.id})
    verified = (
        await session.exec(
            select(HitVerification)
            .where(HitVerification.hit_id == hit.id)
            .order_by(col(HitVerification.at).desc())
            .limit(1)
        )
    ).first()
    if verified is None:
        raise Conflict("record the verification (read accurate, state, still current) before the disposition")
    existing = (await session.exec(select(HitDisposition).where(HitDisposition.hit_id == hit.id))).all()
    corrected = {d.corrects for d in existing if d.corrects}
    latest = [d for d in existing if d.id not in corrected]
    if body.corrects is None:
        if existing:
            raise Conflict(
                f"hit already has a disposition ({latest[0].id}): dispositions are final; "
                "enter a correction naming it in `corrects`"
            )
    else:
        target = next((d for d in existing if d.id == body.corrects), None)
        if target is None:
            raise NotFound(f"disposition {body.corrects} of this hit not found")
        if target.id in corrected:
            raise Conflict(f"disposition {target.id} was already corrected; correct the latest one")
        if not body.notes:
            raise Unprocessable("a correction needs notes saying why")
    if body.valid and body.action == "misread":
        raise Unprocessable("a misread is not a valid hit: enter valid=false")
    _agrees_with_verification(verified, body)
    d = HitDisposition(
        hit_id=hit.id,
        valid=body.valid,
        action=body.action,
        notes=body.notes,
        corrects=body.corrects,
        by=principal.subject,
    )
    session.add(d)
    await session.flush()
    await session.refresh(d)
    return d


# Acting on the hit (the policy: a hit alone is not probable cause; verify the read, the state, and that it is
# still current before acting on it).
_ENFORCEMENT = frozenset({"arrest", "citation", "vehicle_recovered", "stop_made"})


def _agrees_with_verification(v: HitVerification, body: DispositionIn) -> None:
    """A disposition may not contradict the latest verification, in either direction: 409 when it does."""
    if body.action == "misread" and v.read_accurate:
        raise Conflict("the verification says the read was accurate: it cannot be a misread (correct the verification)")
    failed = [
        name
        for name, ok in (
            ("the read was not accurate", v.read_accurate),
            ("the state did not match", v.state_matches),
            ("the entry was no longer current", v.still_current),
        )
        if not ok
    ]
    if not failed:
        return
    if body.valid:
        raise Conflict(f"the verification says {'; '.join(failed)}: the hit cannot be valid (enter valid=false)")
    if body.action in _ENFORCEMENT and not v.read_accurate:
        raise Conflict(f"the verification says the read was not accurate: action {body.action} cannot rest on this hit")


async def pending_hits(session: AsyncSession, scope: Scope, older_than_s: float, limit: int) -> Sequence[Hit]:
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    stmt = (
        scope.where(select(Hit), col(Hit.custodian))
        .where(col(Hit.created_at) <= cutoff)
        .where(~select(HitDisposition.id).where(HitDisposition.hit_id == Hit.id).exists())
        .order_by(col(Hit.created_at))
        .limit(limit)
    )
    return (await session.exec(stmt)).all()


# --- agency lists -----------------------------------------------------------------------------------------------


async def create_list(session: AsyncSession, body: AgencyListIn, scope: Scope) -> AgencyList:
    if body.past_read_matching:
        # Matching a new entry against stored reads is a location history: it goes through the access workflow.
        raise Unprocessable(
            "past_read_matching is not offered: past reads of a plate are a search under a grant "
            "(file a request, POST /v1/requests, then POST /v1/reads/search)"
        )
    if body.covert:
        if not body.case_number:
            raise Unprocessable("a covert list needs the case_number it serves")
        if body.expires_at is None or body.expires_at <= datetime.now(UTC):
            raise Unprocessable("a covert list needs an expires_at in the future")
    exists = (
        await session.exec(scope.where(select(AgencyList), col(AgencyList.agency)).where(AgencyList.name == body.name))
    ).first()
    if exists is not None:
        raise Conflict(f"list {body.name!r} exists")
    lst = AgencyList(**body.model_dump(), agency=scope.agency, created_by=scope.principal.subject)
    session.add(lst)
    await session.flush()
    await session.refresh(lst)
    return lst


async def get_list(session: AsyncSession, scope: Scope, name: str) -> AgencyList:
    """The caller's agency's list of that name (another agency's lists do not exist for it)."""
    stmt = scope.where(select(AgencyList), col(AgencyList.agency)).where(AgencyList.name == name)
    lst = (await session.exec(stmt)).first()
    if lst is None:
        raise NotFound(f"list {name!r} not found in your agency")
    return lst


def entry_out(entry: AgencyEntry, lst: AgencyList) -> AgencyEntryOut:
    return AgencyEntryOut(
        id=entry.id,
        list=lst.name,
        plate=entry.plate,
        state=entry.state,
        case_number=entry.case_number,
        reason=entry.reason,
        owner=entry.owner,
        expires_at=entry.expires_at,
        active=entry.removed_at is None and entry.expires_at > datetime.now(UTC),
        created_by=entry.created_by,
        removed_at=entry.removed_at,
    )


async def add_entry(session: AsyncSession, lst: AgencyList, body: AgencyEntryIn, principal: Principal) -> AgencyEntry:
    if body.expires_at <= datetime.now(UTC):
        raise Unprocessable("expires_at must be in the future")
    if lst.expires_at is not None and body.expires_at > lst.expires_at:
        raise Unprocessable(f"expires_at: at most the list's expiry ({lst.expires_at.isoformat()})")
    entry = AgencyEntry(list_id=lst.id, created_by=principal.subject, **body.model_dump())
    session.add(entry)
    await session.flush()
    await session.refresh(entry)
    return entry


async def remove_entry(
    session: AsyncSession, lst: AgencyList, entry_id: uuid.UUID, principal: Principal
) -> AgencyEntry:
    entry = await session.get(AgencyEntry, entry_id)
    if entry is None or entry.list_id != lst.id:
        raise NotFound(f"entry {entry_id} not found in list {lst.name!r}")
    if entry.removed_at is not None:
        raise Conflict(f"entry {entry_id} was already removed")
    now = datetime.now(UTC)
    entry.removed_at, entry.removed_by, entry.changed_at = now, principal.subject, now
    session.add(entry)
    await session.flush()
    return entry


# --- lists for the cars ------------------------------------------------------------------------------------------


class Distribution:
    """Full lists and deltas, built once per version (pair) and kept: every car asks for the same few."""

    def __init__(self, max_cached: int = 8, alerting: frozenset[str] | None = None) -> None:
        # The cars get the entries that may alert only (the categories that raise a hit here raise one there).
        codes = sorted(c.code for c in CATEGORIES.values() if alerting is None or c.name in alerting)
        self._only = "AND code IN ({})".format(", ".join(f"'{c}'" for c in codes) or "NULL")
        self._full: dict[int, bytes] = {}
        self._delta: dict[tuple[int, int], bytes] = {}
        # One lock per list or delta: the cars asking for one wait for a single build, not for every other one.
        self._locks: dict[object, asyncio.Lock] = {}
        self.max_cached = max_cached

    def _lock(self, key: object) -> asyncio.Lock:
        if len(self._locks) > 4 * self.max_cached:
            self._locks = {k: lock for k, lock in self._locks.items() if lock.locked()}
        return self._locks.setdefault(key, asyncio.Lock())

    async def _query_csv(self, engine: AsyncEngine, query: str) -> bytes:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            buf = io.BytesIO()
            await raw.driver_connection.copy_from_query(query, output=buf, format="csv")  # type: ignore[union-attr]
        return buf.getvalue()

    async def full(self, engine: AsyncEngine, version: int) -> bytes:
        async with self._lock(("full", version)):
            if version not in self._full:
                rows = await self._query_csv(
                    engine,
                    f"SELECT {', '.join(CAR_COLUMNS)} FROM hotlist.bca_entries WHERE version_id = {int(version)} "
                    f"{self._only} ORDER BY nic",
                )
                body = (",".join(CAR_COLUMNS) + "\n").encode() + rows
                self._full = {version: await asyncio.to_thread(gzip.compress, body, 6)}
            return self._full[version]

    async def delta(self, engine: AsyncEngine, since: int, version: int) -> bytes:
        """The gzipped JSON delta (DeltaOut's shape) from `since` to `version`."""
        key = (since, version)
        async with self._lock(key):
            if key not in self._delta:
                async with engine.connect() as conn:
                    known = (
                        await conn.execute(
                            text("SELECT dropped FROM hotlist.list_versions WHERE id = :v"), {"v": since}
                        )
                    ).first()
                if known is None:
                    raise NotFound(f"there never was a version {since}: download the full list")
                if known.dropped:
                    raise Gone(f"version {since} is no longer kept: download the full list")
                cols = ", ".join(CAR_COLUMNS)
                new, old = int(version), int(since)
                adds = await self._query_csv(
                    engine,
                    f"SELECT {cols} FROM hotlist.bca_entries WHERE version_id = {new} {self._only} EXCEPT "
                    f"SELECT {cols} FROM hotlist.bca_entries WHERE version_id = {old} {self._only}",
                )
                removes = await self._query_csv(
                    engine,
                    f"SELECT nic FROM (SELECT {cols} FROM hotlist.bca_entries WHERE version_id = {old} {self._only} "
                    f"EXCEPT SELECT {cols} FROM hotlist.bca_entries WHERE version_id = {new} {self._only}) AS gone",
                )
                body = await asyncio.to_thread(_delta_json, since, version, adds, removes)
                if len(self._delta) >= self.max_cached:
                    self._delta.clear()
                self._delta[key] = body
            return self._delta[key]


def _delta_json(since: int, version: int, adds: bytes, removes: bytes) -> bytes:
    import csv
    import json

    add_rows = [[v or None for v in row] for row in csv.reader(io.StringIO(adds.decode()))]
    remove_nics = [line for line in removes.decode().splitlines() if line]
    body = {"since": since, "version": version, "columns": CAR_COLUMNS, "adds": add_rows, "removes": remove_nics}
    return gzip.compress(json.dumps(body, separators=(",", ":")).encode(), 6)

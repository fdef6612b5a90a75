"""Two agencies' data behind the web pages: the access app (ingest and hotlist apps in-process behind it), each agency
with the same unit name "CAR-1", reads 3, 90 and 150 days ago (the older two past retention: the purge destroys
them), hits (A's partly on a covert list), a fixed reader (A), access requests decided, searches under grants (A's
with a warrant), a breach, a Safe at Home request, people to log in; A's auditor made the commissioner's summary.
Every name carries the agency's tag, so a leak of one agency's data onto the other's page shows."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from services.access import identity
from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from services.ingest.writer import READS, ensure_partition
from shared.audit import record
from shared.auth import Principal
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

UNIT = "CAR-1"
PASSWORD = "correct horse battery"
DAYS_AGO = (3, 90, 150)  # the last two are past the 60-day retention


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Agency:
    ori: str
    tag: str
    reads_per_day: tuple[int, ...]
    hits: int
    covert_hits: int
    warrant: bool
    plates: list[str] = field(default_factory=list)
    read_ids: list[str] = field(default_factory=list)
    case: str = ""
    people: dict[str, str] = field(default_factory=dict)  # role -> login name

    def leaks(self) -> list[str]:
        """Strings of this agency's that must never appear on another agency's page, nor any plate on a page."""
        return [self.case, f"BADGE-{self.tag}", f"list-{self.tag}", f"fixed-{self.tag}", f"reason of {self.tag}",
                *self.plates]  # fmt: skip


@dataclass
class Web:
    settings: Settings
    access: FastAPI
    ingest: FastAPI
    hotlist: FastAPI
    client: httpx.AsyncClient
    ing: httpx.AsyncClient
    a: Agency
    b: Agency
    make_token: TokenFactory

    def token(self, agency: Agency, role: str) -> str:
        claims: dict[str, Any] = {"agency": agency.ori}
        if role in ("officer", "supervisor"):
            claims.update(
                badge=f"T-{agency.tag}", trained_until=int((datetime.now(UTC) + timedelta(days=9)).timestamp())
            )
        return self.make_token(subject=f"{role}-{agency.tag}", roles=[role], **claims)


def _day(n: int) -> datetime:
    d = datetime.now(UTC).date() - timedelta(days=n)
    return datetime(d.year, d.month, d.day, 10, tzinfo=UTC)


async def _readings(conn: Any, ag: Agency) -> None:
    reads, hits = [], []
    for n, count in zip(DAYS_AGO, ag.reads_per_day, strict=True):
        at = _day(n)
        sid = uuid.uuid4()
        await conn.execute(
            text(
                "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at, "
                "ended_at, end_reason) VALUES (:id, :u, :a, :b, 'officer', ARRAY['front'], :s, :e, :e, 'logout')"
            ),
            {"id": sid, "u": UNIT, "a": ag.ori, "b": f"BADGE-{ag.tag}", "s": at, "e": at + timedelta(hours=8)},
        )
        for i in range(count):
            plate = f"{ag.tag}{n:03d}{i}"
            ag.plates.append(plate)
            rid = uuid.uuid4()
            ag.read_ids.append(str(rid))
            reads.append({
                "id": rid, "captured_at": at + timedelta(minutes=i + 1), "received_at": at, "agency": ag.ori,
                "unit": UNIT, "shift_id": sid, "camera": "front", "client_read_id": f"web-{uuid.uuid4()}",
                "lat": 45.01, "lon": -93.31, "plate": plate, "recognition_pending": False, "match_pending": False,
                "attempts": 0, "hits": [],
            })  # fmt: skip
    for k, r in enumerate(reads[: ag.hits + ag.covert_hits]):
        covert = k >= ag.hits
        hits.append({
            "id": uuid.uuid4(), "r": str(r["id"]), "l": f"list-{ag.tag}" if covert else "bca",
            "c": "investigation" if covert else ("stolen_vehicle" if k % 2 == 0 else "warrant"), "cv": covert,
            "a": ag.ori, "u": UNIT, "at": r["captured_at"],
        })  # fmt: skip
    await conn.execute(READS.insert(), reads)
    for h in hits:
        await conn.execute(
            text(
                "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                "match, read_plate, entry_plate, state_check, covert, priority, past_read, agency, unit, captured_at, "
                "created_at) VALUES (:id, :r, 'V1', :l, :c, :c, 'vehicle', 'exact', 'X', 'X', 'match', :cv, 0, "
                "false, :a, :u, :at, :at)"
            ),
            h,
        )


async def _requests(conn: Any, ag: Agency, searches: int) -> list[str]:
    """An approved request with its grant (expiring in 3 days; A's under a warrant) and a denied one."""
    filed = datetime.now(UTC) - timedelta(days=2)
    grants = []
    for decision in ("approve", "deny"):
        rid, did = uuid.uuid4(), uuid.uuid4()
        p = {"id": rid, "a": ag.ori, "f": filed, "c": ag.case, "why": f"reason of {ag.tag}", "d": did}
        await conn.execute(
            text(
                "INSERT INTO access.requests (id, requester, requester_roles, requester_agency, status, "
                "current_version, filed_at, updated_at) VALUES (:id, 'o', ARRAY['officer'], :a, :st, 1, :f, :f)"
            ),
            {**p, "st": "approved" if decision == "approve" else "denied"},
        )
        await conn.execute(
            text(
                "INSERT INTO access.request_versions (id, request_id, version, case_number, reason, "
                'suspicion_basis, legal_basis, plates, misread_tolerant, start, "end", filed_by, filed_at) VALUES '
                "(:v, :id, 1, :c, :why, 'seen', 'investigation', ARRAY['ABC123'], false, :f, :f, 'o', :f)"
            ),
            {**p, "v": uuid.uuid4()},
        )
        await conn.execute(
            text(
                "INSERT INTO access.decisions (id, request_id, version, decision, reason, decided_by, decided_at) "
                "VALUES (:d, :id, 1, :dec, :why, 'sup', :f)"
            ),
            {**p, "dec": decision},
        )
        if decision == "approve":
            gid = uuid.uuid4()
            await conn.execute(
                text(
                    "INSERT INTO access.grants (id, request_id, version, decision_id, holder, case_number, plates, "
                    'misread_tolerant, start, "end", created_at, expires_at, data_agency, warrant_number) VALUES '
                    "(:g, :id, 1, :d, 'o', :c, ARRAY['ABC123'], false, :f, :f, :f, :x, :a, :w)"
                ),
                {**p, "g": gid, "x": datetime.now(UTC) + timedelta(days=3), "w": f"W-{ag.tag}" if ag.warrant else None},
            )
            grants.append(str(gid))
    return grants * searches


async def _people(app: FastAPI, ag: Agency) -> None:
    async with app.state.sessionmaker() as session:
        for role, trained in (("supervisor", True), ("auditor", True), ("officer", True), ("untrained", False)):
            name = f"web-{role}-{ag.tag}".lower()
            user = await identity.create_user(
                session, app.state.passwords, username=name, password=PASSWORD, full_name=f"{role} {ag.tag}",
                agency=ag.ori, roles=["supervisor" if role == "untrained" else role],
            )  # fmt: skip
            if trained:
                today = date.today()
                await identity.add_training(
                    session, user, course="ALPR", completed_on=today - timedelta(days=10),
                    expires_on=today + timedelta(days=300), recorded_by="test",
                )  # fmt: skip
            ag.people[role] = name
        await session.commit()


@asynccontextmanager
async def two_agencies(settings: Settings, make_token: TokenFactory, **overrides: Any) -> AsyncIterator[Web]:
    tag = uuid.uuid4().hex[:4].upper()
    a = Agency(f"MNWA{tag}", f"A{tag}", (5, 4, 3), hits=3, covert_hits=2, warrant=True, case=f"CASE-A{tag}")
    b = Agency(f"MNWB{tag}", f"B{tag}", (2, 2, 1), hits=1, covert_hits=0, warrant=False, case=f"CASE-B{tag}")
    own = settings.model_copy(
        # Holds reviewed every 10 days: A's hold (placed now) is on the dashboard's 30-day review list.
        update={
            "hotlist_sync_scheduled": False,
            "public_report_limit": "1000/minute",
            "hold_review_days": 10,
            **overrides,
        }
    )
    ingest = ingest_app(ingest_settings(own), run_worker=False)
    hotlist = hotlist_app(own)
    async with running(ingest) as ing, running(hotlist):
        access = access_app(
            own, ingest_transport=httpx.ASGITransport(app=ingest), hotlist_transport=httpx.ASGITransport(app=hotlist)
        )
        async with running(access) as client:
            web = Web(own, access, ingest, hotlist, client, ing, a, b, make_token)
            async with ingest.state.engine.begin() as conn:
                for n in DAYS_AGO:
                    await ensure_partition(conn, _day(n).date())
            async with ingest.state.engine.begin() as conn:
                for ag in (a, b):
                    await _readings(conn, ag)
            for ag, searches in ((a, 2), (b, 1)):
                async with ingest.state.engine.begin() as conn:
                    grants = await _requests(conn, ag, searches)
                async with access.state.sessionmaker() as session:
                    who = Principal(subject=f"officer-{ag.tag}", roles=frozenset({"officer"}), agency=ag.ori)
                    for gid in grants:
                        await record(session, service="access", action="reads.search", principal=who,
                                     grant_id=gid, case_number=ag.case, record_count=1)  # fmt: skip
                    await session.commit()
                await _people(access, ag)
                resp = await ing.post(
                    "/v1/subject-requests/safe-at-home",
                    json={"plate": f"SAH{ag.tag}", "request_reference": f"SAH-{ag.tag}",
                          "received_on": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
                    headers=auth(web.token(ag, "supervisor")),
                )  # fmt: skip
                assert resp.status_code == 201, resp.text
            resp = await ing.post(
                "/v1/holds",
                json={"case_number": a.case, "reason": f"reason of {a.tag}", "read_ids": a.read_ids[:1]},
                headers=auth(web.token(a, "supervisor")),
            )
            assert resp.status_code == 201, resp.text
            resp = await ing.post(
                "/v1/agents",
                json={"name": f"fixed-{a.tag}", "kind": "fixed", "lat": 45.03, "lon": -93.36,
                      "placed_on": (date.today() - timedelta(days=20)).isoformat()},
                headers=auth(web.token(a, "admin")),
            )  # fmt: skip
            assert resp.status_code == 201, resp.text
            resp = await client.post(
                "/v1/breaches",
                json={"what": f"laptop of {a.tag}", "discovered_at": datetime.now(UTC).isoformat()},
                headers=auth(web.token(a, "supervisor")),
            )
            assert resp.status_code == 201, resp.text
            resp = await client.get("/v1/audit/verify", headers=auth(web.token(a, "auditor")))
            assert resp.status_code == 200, resp.text
            end = datetime.now(UTC)
            resp = await client.get(
                "/v1/reports/commissioner-summary",
                params={"start": (end - timedelta(days=700)).isoformat(), "end": end.isoformat(),
                        "completed_on": date.today().isoformat()},
                headers=auth(web.token(a, "auditor")),
            )  # fmt: skip
            assert resp.status_code == 200, resp.text
            yield web


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app (its lifespan already running) on a real port, in this event loop: for a real browser."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, no event
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()

"""Two agencies in one back office: each agency's statutory reports (log of use, public log of use, biennial audit,
commissioner summary) and its audit log (list and CSV export) show its own records only. Both agencies have a car
named "CAR-1", reads, shifts, hits (A's on a covert list), access requests, a disclosure and audit entries; B's
auditor sees none of A's figures, case numbers, badges, recipients or list names, and A's auditor still sees A's."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

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

A, B = "MNSECA001", "MNSECB001"
UNIT = "CAR-1"  # the same unit name in both agencies: their figures must never merge


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _agency_data(agency: str, tag: str, start: datetime, *, reads: int, hits: int, covert: bool) -> dict[str, Any]:
    """One agency's generated records in the period: a shift of UNIT with `reads` reads, `hits` hits, a request
    (filed, approved, granted) and a disclosure; names carry `tag` so a leak is visible in any answer."""
    s_at = start + timedelta(hours=9)
    shift = {"id": uuid.uuid4(), "u": UNIT, "a": agency, "b": f"BADGE-{tag}", "s": s_at, "e": s_at + timedelta(hours=8)}
    rows = [
        {
            "id": uuid.uuid4(),
            "captured_at": s_at + timedelta(minutes=5 * i + 1),
            "received_at": s_at,
            "agency": agency,
            "unit": UNIT,
            "shift_id": shift["id"],
            "camera": "front",
            "client_read_id": f"sec-{uuid.uuid4()}",
            "lat": 45.0,
            "lon": -93.3,
            "plate": f"{tag}{i:03d}",
            "recognition_pending": False,
            "match_pending": False,
            "attempts": 0,
            "hits": [],
        }
        for i in range(reads)
    ]
    hit_rows = [
        {
            "id": uuid.uuid4(),
            "r": str(r["id"]),
            "l": f"list-{tag}" if covert else "bca",
            "c": "investigation" if covert else "stolen_vehicle",
            "cv": covert,
            "a": agency,
            "cu": agency,
            "u": UNIT,
            "at": r["captured_at"],
        }
        for r in rows[:hits]
    ]
    return {
        "agency": agency,
        "tag": tag,
        "shift": shift,
        "reads": rows,
        "hits": hit_rows,
        "case": f"CASE-{tag}-{uuid.uuid4().hex[:6]}",
        "recipient": f"Recipient {tag} PD",
        "filed": start + timedelta(hours=12),
    }


async def _insert(conn: Any, d: dict[str, Any]) -> None:
    await conn.execute(READS.insert(), d["reads"])
    await conn.execute(
        text(
            "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at, ended_at, "
            "end_reason) VALUES (:id, :u, :a, :b, 'officer', ARRAY['front'], :s, :e, :e, 'logout')"
        ),
        d["shift"],
    )
    for h in d["hits"]:
        await conn.execute(
            text(
                "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                "match, read_plate, entry_plate, state_check, covert, priority, past_read, agency, custodian, unit, "
                "captured_at, created_at) VALUES (:id, :r, 'V1', :l, :c, :c, 'vehicle', 'exact', 'X', 'X', 'match', "
                ":cv, 0, false, :a, :cu, :u, :at, :at)"
            ),
            h,
        )
    rid, did, gid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    p = {"id": rid, "a": d["agency"], "f": d["filed"], "c": d["case"], "why": f"reason of {d['tag']}"}
    await conn.execute(
        text(
            "INSERT INTO access.requests (id, requester, requester_roles, requester_agency, status, current_version, "
            "filed_at, updated_at) VALUES (:id, 'o', ARRAY['officer'], :a, 'approved', 1, :f, :f)"
        ),
        p,
    )
    await conn.execute(
        text(
            "INSERT INTO access.request_versions (id, request_id, version, case_number, reason, suspicion_basis, "
            'legal_basis, plates, misread_tolerant, start, "end", filed_by, filed_at) VALUES (:v, :id, 1, :c, :why, '
            "'seen', 'investigation', ARRAY['ABC123'], false, :f, :f, 'o', :f)"
        ),
        {**p, "v": uuid.uuid4()},
    )
    await conn.execute(
        text(
            "INSERT INTO access.decisions (id, request_id, version, decision, reason, decided_by, decided_at) "
            "VALUES (:d, :id, 1, 'approve', :why, 'sup', :f)"
        ),
        {**p, "d": did},
    )
    await conn.execute(
        text(
            "INSERT INTO access.grants (id, request_id, version, decision_id, holder, case_number, plates, "
            "misread_tolerant, start, \"end\", created_at, expires_at, data_agency) VALUES (:g, :id, 1, :d, 'o', "
            ":c, ARRAY['ABC123'], false, :f, :f, :f, :f, :a)"
        ),
        {**p, "d": did, "g": gid},
    )
    await conn.execute(
        text(
            "INSERT INTO access.disclosures (id, grant_id, case_number, recipient_name, legal_basis, purpose, "
            "read_ids, record_count, disclosed_by, disclosed_at, agency) VALUES (:x, :g, :c, :r, 'agency_request', "
            "'joint case', ARRAY[]::text[], 2, 'o', :f, :a)"
        ),
        {**p, "x": uuid.uuid4(), "g": gid, "r": d["recipient"]},
    )
    d["grant_id"] = str(gid)


async def test_each_agency_reports_and_audits_its_own(settings: Settings, make_token: TokenFactory) -> None:
    began = datetime.now(UTC)
    first = (began - timedelta(days=200)).date()  # clear of the periods the retention tests fill
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = start + timedelta(days=2)
    a = _agency_data(A, "AAA", start, reads=7, hits=4, covert=True)
    b = _agency_data(B, "BBB", start, reads=3, hits=1, covert=False)
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest) as ing, running(hotlist) as hot:
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            engine = ingest.state.engine
            async with engine.begin() as conn:
                await ensure_partition(conn, start.date())
            async with engine.begin() as conn:
                await _insert(conn, a)
                await _insert(conn, b)
            async with access.state.sessionmaker() as session:  # each agency's officer searched under its case
                for d in (a, b):
                    who = Principal(subject=f"officer-{d['tag']}", roles=frozenset({"officer"}), agency=d["agency"])
                    await record(session, service="access", action="reads.search", principal=who,
                                 case_number=d["case"], record_count=len(d["reads"]),
                                 grant_id=d["grant_id"])  # fmt: skip
                    # An access that names no grant: the audit's "accesses against grants" flags it.
                    await record(session, service="access", action="image.view", principal=who, object_ids=["k"])
                await session.commit()

            # A holds its first read (and so its hit), B its hit: holds and the retention check are each agency's.
            sup_a = _auth(make_token(subject="sup-AAA", roles=["supervisor"], agency=A))
            sup_b = _auth(make_token(subject="sup-BBB", roles=["supervisor"], agency=B))
            case = {"case_number": a["case"], "reason": "held for trial"}
            held = await ing.post("/v1/holds", json={**case, "read_ids": [str(a["reads"][0]["id"])]}, headers=sup_a)
            assert held.status_code == 201, held.text
            case = {"case_number": b["case"], "reason": "held for trial"}
            held = await hot.post("/v1/hit-holds", json={**case, "hit_ids": [str(b["hits"][0]["id"])]}, headers=sup_b)
            assert held.status_code == 201, held.text
            params = {"start": start.isoformat(), "end": end.isoformat()}
            try:
                for me, other in ((b, a), (a, b)):
                    auditor = _auth(make_token(subject=f"aud-{me['tag']}", roles=["auditor"], agency=me["agency"]))
                    leaks = (other["case"], f"BADGE-{other['tag']}", other["recipient"], f"reason of {other['tag']}",
                             f"list-{other['tag']}", f"{other['tag']}000")  # fmt: skip

                    def clean(body: str, leaks: tuple[str, ...] = leaks) -> None:
                        found = [x for x in leaks if x in body]
                        assert not found, f"another agency's data in the answer: {found}"

                    # ---- the log of use: one CAR-1, with this agency's reads, shift and hits only
                    resp = await client.get("/v1/reports/log-of-use", params=params, headers=auditor)
                    assert resp.status_code == 200, resp.text
                    clean(resp.text)
                    log = resp.json()
                    assert log["agency"] == me["agency"]
                    assert [(u["agency"], u["unit"]) for u in log["units"]] == [(me["agency"], UNIT)]
                    (car,) = log["units"]
                    assert car["reads"] == log["totals"]["reads"] == len(me["reads"])
                    assert car["hits"] == log["totals"]["hits"] == len(me["hits"])
                    assert [i["badge"] for i in car["active_intervals"]] == [f"BADGE-{me['tag']}"]
                    csv_log = await client.get("/v1/reports/log-of-use", params={**params, "format": "csv"},
                                               headers=auditor)  # fmt: skip
                    assert csv_log.status_code == 200
                    clean(csv_log.text)

                    # ---- the public log of use names its agency
                    pub = await client.get("/v1/public/log-of-use", params={**params, "agency": me["agency"]})
                    assert pub.status_code == 200, pub.text
                    clean(pub.text)
                    assert pub.json()["totals"]["reads"] == len(me["reads"])

                    # ---- the biennial audit and the commissioner's summary
                    resp = await client.get("/v1/reports/audit", params=params, headers=auditor)
                    assert resp.status_code == 200, resp.text
                    clean(resp.text)
                    audit = resp.json()
                    assert [r["case_number"] for r in audit["access"]["requests"]] == [me["case"]]
                    assert [x["recipient"] for x in audit["access"]["disclosures"]] == [me["recipient"]]
                    assert audit["hits"]["total"] == len(me["hits"])
                    assert audit["classification"]["reads_total"] == len(me["reads"])
                    # Accesses against grants (subd. 6, 7(b)): the agency's own, each with its grant and request.
                    now = {"start": began.isoformat(), "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
                    recent = await client.get("/v1/reports/audit", params=now, headers=auditor)
                    assert recent.status_code == 200, recent.text
                    clean(recent.text)
                    against = recent.json()["accesses_against_grants"]
                    searched = [e for e in against["entries"] if e["action"] == "reads.search"]
                    assert [(e["grant_id"], e["legal_basis"]) for e in searched] == [(me["grant_id"], "investigation")]
                    assert searched[0]["request_id"] and not searched[0]["without_grant"]
                    assert against["without_grant"] == 1 and against["by_action"]["image.view"] == 1
                    reads_kept, hits_kept = (1, 0) if me is a else (0, 1)
                    ret = audit["retention"]
                    assert (ret["reads"]["reads_held"], ret["hits"]["hits_held"]) == (reads_kept, hits_kept)
                    # Its reads are 200 days old: the check finds its own unheld ones, never the other's.
                    assert ret["reads"]["check"]["reads_overdue"] == len(me["reads"]) - reads_kept
                    assert ret["reads"]["check"]["agency"] == ret["hits"]["check"]["agency"] == me["agency"]
                    html = await client.get("/v1/reports/audit", params={**params, "format": "html"}, headers=auditor)
                    assert html.status_code == 200 and me["case"] in html.text
                    clean(html.text)
                    resp = await client.get("/v1/reports/commissioner-summary", params=params, headers=auditor)
                    assert resp.status_code == 200, resp.text
                    summary = resp.json()
                    assert summary["agency"] == me["agency"]
                    assert summary["findings"]["hits"] == len(me["hits"])
                    assert summary["findings"]["plates read (reads with a plate)"] == len(me["reads"])
                    assert summary["findings"]["access requests filed / approved / denied"] == "1 / 1 / 0"
                    assert summary["findings"]["disclosures to other agencies"] == 1

                    # ---- the audit log: the list and the CSV export
                    resp = await client.get("/v1/audit", params={"since": began.isoformat(), "limit": 500},
                                            headers=auditor)  # fmt: skip
                    assert resp.status_code == 200, resp.text
                    clean(resp.text)
                    entries = resp.json()["entries"]
                    assert {e["agency"] for e in entries} == {me["agency"]}
                    assert me["case"] in {e["case_number"] for e in entries}
                    export = await client.get(
                        "/v1/audit/export",
                        params={"since": began.isoformat(), "until": (datetime.now(UTC) + timedelta(minutes=1))
                                .isoformat()},
                        headers=auditor,
                    )  # fmt: skip
                    assert export.status_code == 200, export.text
                    clean(export.text)
                    rows = list(csv.DictReader(io.StringIO(export.text)))
                    assert {r["agency"] for r in rows} == {me["agency"]}
                    assert me["case"] in {r["case_number"] for r in rows}
                    # Asked by the other agency's case number (last: this query's own entry names it)
                    theirs = await client.get("/v1/audit", params={"case_number": other["case"]}, headers=auditor)
                    assert theirs.status_code == 200 and theirs.json()["entries"] == []
            finally:
                async with engine.begin() as conn:  # leave nothing for other tests' periods
                    ids = [r["id"] for d in (a, b) for r in d["reads"]]
                    await conn.execute(text("DELETE FROM ingest.reads WHERE id = ANY(:i)"), {"i": ids})
                    await conn.execute(text("DELETE FROM ingest.shifts WHERE agency IN (:a, :b)"), {"a": A, "b": B})
                    await conn.execute(text("DELETE FROM hotlist.hits WHERE agency IN (:a, :b)"), {"a": A, "b": B})
                    for schema, table in (
                        ("ingest", "hold_reads"),
                        ("hotlist", "hit_hold_items"),
                    ):
                        holds = "holds" if schema == "ingest" else "hit_holds"
                        await conn.execute(
                            text(f"DELETE FROM {schema}.{table} WHERE hold_id IN "
                                 f"(SELECT id FROM {schema}.{holds} WHERE agency IN (:a, :b))"),
                            {"a": A, "b": B},
                        )  # fmt: skip
                        await conn.execute(
                            text(f"DELETE FROM {schema}.{holds} WHERE agency IN (:a, :b)"), {"a": A, "b": B}
                        )

"""The log of use (JSON, CSV, public) and the biennial audit report (JSON, HTML) against figures computed here from
generated shifts, reads, hits, requests and disclosures spread over 40 days; access gets ingest's and hotlist's
figures over HTTP (their real apps, in-process)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from services.ingest.writer import READS, ensure_partition
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

UNITS = ("RPT-1", "RPT-2")
AGENCY = "MN0271200"
CATS = ("stolen_vehicle", "wanted_person")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_log_of_use_and_audit_report(settings: Settings, make_token: TokenFactory) -> None:
    now = datetime.now(UTC)
    first = (now - timedelta(days=55)).date()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = start + timedelta(days=40)
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            engine = ingest.state.engine
            auditor = make_token(subject="aud-rpt", roles=["auditor"], agency=AGENCY)
            params = {"start": start.isoformat(), "end": end.isoformat()}
            # Other tests' rows may fall in the period: access and hit figures are compared as the change ours make.
            resp = await client.get("/v1/reports/audit", params=params, headers=_auth(auditor))
            assert resp.status_code == 200, resp.text
            before = resp.json()
            shifts: list[dict] = []
            reads: list[dict] = []
            hits: list[dict] = []
            for d in range(40):
                day = (start + timedelta(days=d)).date()
                for u, unit in enumerate(UNITS):
                    if (d + u) % 5 == 0:
                        continue  # the unit was not out that day
                    s_at = datetime(day.year, day.month, day.day, 8 + u, tzinfo=UTC)
                    shift = {"id": uuid.uuid4(), "unit": unit, "start": s_at, "end": s_at + timedelta(hours=8)}
                    shifts.append(shift)
                    for i in range((d * 7 + u) % 6 + 1):
                        reads.append(
                            {
                                "id": uuid.uuid4(),
                                "captured_at": s_at + timedelta(minutes=13 * i + 1),
                                "received_at": s_at,
                                "agency": "MN0271200",
                                "unit": unit,
                                "shift_id": shift["id"],
                                "camera": "front",
                                "client_read_id": f"rpt-{uuid.uuid4()}",
                                "lat": 45.0,
                                "lon": -93.3,
                                "plate": f"P{d:02d}{i}",
                                "recognition_pending": False,
                                "match_pending": False,
                                "attempts": 0,
                                "hits": [],
                            }
                        )
                        if i % 4 == 1:
                            hits.append({"unit": unit, "at": reads[-1]["captured_at"], "cat": CATS[(d + i) % 2]})
            async with engine.begin() as conn:
                for day in sorted({r["captured_at"].date() for r in reads}):
                    await ensure_partition(conn, day)
            async with engine.begin() as conn:
                await conn.execute(READS.insert(), reads)
                for sh in shifts:
                    await conn.execute(
                        text(
                            "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, "
                            "expires_at, ended_at, end_reason) VALUES (:id, :u, 'MN0271200', 'B-7731', 'officer-x', "
                            "ARRAY['front'], :s, :e, :e, 'logout')"
                        ),
                        {"id": sh["id"], "u": sh["unit"], "s": sh["start"], "e": sh["end"]},
                    )
                for h in hits:
                    await conn.execute(
                        text(
                            "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, "
                            "concerns, match, read_plate, entry_plate, state_check, covert, priority, past_read, "
                            "unit, agency, captured_at, created_at) VALUES (:id, :r, 'V1', 'bca', :c, :c, 'vehicle', "
                            "'exact', 'X', 'X', 'match', false, 0, false, :u, 'MN0271200', :at, :at)"
                        ),
                        {"id": uuid.uuid4(), "r": str(uuid.uuid4()), "c": h["cat"], "u": h["unit"], "at": h["at"]},
                    )
                # Access requests in the period: 5 filed, 3 approved, 1 denied; 2 disclosures on a grant.
                req_ids = []
                for k in range(5):
                    rid, filed = uuid.uuid4(), start + timedelta(days=3 + k, hours=2)
                    req_ids.append((rid, filed))
                    await conn.execute(
                        text(
                            "INSERT INTO access.requests (id, requester, requester_roles, requester_agency, status, "
                            "current_version, filed_at, updated_at) VALUES (:id, 'o', ARRAY['officer'], 'MN0271200', "
                            ":st, 1, :f, :f)"
                        ),
                        {"id": rid, "f": filed, "st": ["approved", "approved", "approved", "denied", "pending"][k]},
                    )
                    await conn.execute(
                        text(
                            "INSERT INTO access.request_versions (id, request_id, version, case_number, reason, "
                            'suspicion_basis, legal_basis, plates, misread_tolerant, start, "end", filed_by, '
                            "filed_at) VALUES (:id, :r, 1, :c, 'robbery follow-up', 'witness saw plate', :lb, "
                            "ARRAY['ABC123'], true, :f, :f, 'o', :f)"
                        ),
                        {
                            "id": uuid.uuid4(),
                            "r": rid,
                            "c": f"RPT-CASE-{k}",
                            "f": filed,
                            "lb": "court_order" if k == 2 else "investigation",
                        },
                    )
                decision_ids = []
                for k, verdict in enumerate(["approve", "approve", "approve", "deny"]):
                    did = uuid.uuid4()
                    decision_ids.append(did)
                    await conn.execute(
                        text(
                            "INSERT INTO access.decisions (id, request_id, version, decision, reason, decided_by, "
                            "decided_at) VALUES (:id, :r, 1, :v, 'scope fits the case', 'sup', :at)"
                        ),
                        {"id": did, "r": req_ids[k][0], "v": verdict, "at": req_ids[k][1] + timedelta(hours=1)},
                    )
                gid = uuid.uuid4()
                await conn.execute(
                    text(
                        "INSERT INTO access.grants (id, request_id, version, decision_id, holder, case_number, plates, "
                        "misread_tolerant, start, \"end\", created_at, expires_at) VALUES (:id, :r, 1, :d, 'o', "
                        "'RPT-CASE-0', ARRAY['ABC123'], true, :s, :e, :s, :e)"
                    ),
                    {"id": gid, "r": req_ids[0][0], "d": decision_ids[0], "s": start, "e": end},
                )
                for k in range(2):
                    await conn.execute(
                        text(
                            "INSERT INTO access.disclosures (id, grant_id, case_number, recipient_name, legal_basis, "
                            "purpose, read_ids, record_count, disclosed_by, disclosed_at, agency) VALUES (:id, :g, "
                            "'RPT-CASE-0', 'Robbinsdale PD', 'agency_request', 'joint case', ARRAY[]::text[], 3, "
                            "'o', :at, 'MN0271200')"
                        ),
                        {"id": uuid.uuid4(), "g": gid, "at": start + timedelta(days=10 + k)},
                    )

            supervisor = make_token(subject="sup-rpt", roles=["supervisor"], badge="S-9", agency=AGENCY)

            # ---- the log of use, against figures computed from the generated rows
            resp = await client.get("/v1/reports/log-of-use", params=params, headers=_auth(supervisor))
            assert resp.status_code == 200, resp.text
            log = resp.json()
            ours = {u["unit"]: u for u in log["units"] if u["unit"] in UNITS}
            assert set(ours) == set(UNITS)
            for unit in UNITS:
                u = ours[unit]
                assert u["reads"] == sum(1 for r in reads if r["unit"] == unit)
                assert u["hits"] == sum(1 for h in hits if h["unit"] == unit)
                unit_shifts = [s for s in shifts if s["unit"] == unit]
                assert len(u["active_intervals"]) == len(unit_shifts)
                assert u["active_hours"] == 8 * len(unit_shifts)
                per_shift = Counter(r["shift_id"] for r in reads if r["unit"] == unit)
                assert {uuid.UUID(i["shift_id"]): i["reads"] for i in u["active_intervals"]} == dict(per_shift)
                assert all(i["badge"] == "B-7731" for i in u["active_intervals"])
            assert log["totals"]["reads"] - before["log_of_use"]["totals"]["reads"] == len(reads)

            csv_resp = await client.get(
                "/v1/reports/log-of-use", params={**params, "format": "csv"}, headers=_auth(supervisor)
            )
            assert csv_resp.status_code == 200 and csv_resp.headers["content-type"].startswith("text/csv")
            rows = [r for r in csv.DictReader(io.StringIO(csv_resp.text)) if r["unit"] in UNITS]
            per_unit_day = Counter((r["unit"], r["captured_at"].date().isoformat()) for r in reads)
            assert {(r["unit"], r["day"]): int(r["plates_read"]) for r in rows} == dict(per_unit_day)

            # ---- the public version: no token, no badge, no shift id
            pub = await client.get("/v1/public/log-of-use", params={**params, "agency": AGENCY})
            assert pub.status_code == 200, pub.text
            assert "B-7731" not in pub.text and "shift_id" not in pub.text and "officer-x" not in pub.text
            assert pub.json()["totals"]["reads"] == log["totals"]["reads"]
            bad = await client.get(
                "/v1/public/log-of-use", params={"start": "2026-01-01T00:00:00", "end": "x", "agency": AGENCY}
            )
            assert bad.status_code == 422
            naive = await client.get(
                "/v1/public/log-of-use",
                params={"start": "2026-01-01T00:00:00", "end": "2026-02-01T00:00:00", "agency": AGENCY},
            )
            assert naive.status_code == 422 and "zone" in naive.json()["detail"]

            # ---- the biennial audit report
            resp = await client.get("/v1/reports/audit", params=params, headers=_auth(auditor))
            assert resp.status_code == 200, resp.text
            audit = resp.json()
            acc = audit["access"]
            was = before["access"]
            assert acc["requests_filed"] - was["requests_filed"] == 5
            assert acc["requests_approved"] - was["requests_approved"] == 3
            assert acc["requests_denied"] - was["requests_denied"] == 1
            assert {f"RPT-CASE-{k}" for k in range(5)} <= {r["case_number"] for r in acc["requests"]}
            assert len(acc["disclosures"]) - len(was["disclosures"]) == 2
            assert len(acc["court_orders"]) - len(was["court_orders"]) == 1
            cats = before["hits"]["by_category"]
            assert {k: v - cats.get(k, 0) for k, v in audit["hits"]["by_category"].items() if v != cats.get(k, 0)} == (
                dict(Counter(h["cat"] for h in hits))
            )
            per_day = Counter(r["captured_at"].date().isoformat() for r in reads)
            was_days = before["reads_per_day"]
            assert {
                d: n - was_days.get(d, 0) for d, n in audit["reads_per_day"].items() if n != was_days.get(d, 0)
            } == (dict(per_day))
            assert audit["audit_chain"]["ok"] is True
            assert "check_ok" in audit["retention"]

            page = await client.get("/v1/reports/audit", params={**params, "format": "html"}, headers=_auth(auditor))
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert page.text.count("<svg") == 2 and "Plates read per day" in page.text
            assert "RPT-CASE-3" in page.text and "Robbinsdale PD" in page.text

            # Reading a report is audited.
            async with engine.connect() as conn:
                entries = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM audit.audit_log WHERE action IN ('report.audit', 'report.log_of_use')"
                        )
                    )
                ).scalar_one()
            assert entries >= 3

            # Leave nothing for other tests.
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM ingest.reads WHERE unit = ANY(:u)"), {"u": list(UNITS)})
                await conn.execute(text("DELETE FROM ingest.shifts WHERE unit = ANY(:u)"), {"u": list(UNITS)})
                await conn.execute(text("DELETE FROM hotlist.hits WHERE unit = ANY(:u)"), {"u": list(UNITS)})


async def test_report_needs_its_figures(settings: Settings, make_token: TokenFactory) -> None:
    from tests.ingest.conftest import dead_url

    app = access_app(settings.model_copy(update={"ingest_url": dead_url(), "hotlist_url": dead_url()}))
    async with running(app) as client:
        resp = await client.get(
            "/v1/public/log-of-use",
            params={"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "agency": AGENCY},
        )
        assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]

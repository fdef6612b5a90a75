"""Records for a records request and for 13.055: the audit trail as CSV filtered by period, actor and case; a breach
record with who was told, how and when."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from shared.audit import record
from tests.access.conftest import Access, bearer
from tests.conftest import TokenFactory


async def test_audit_trail_csv_by_period_actor_and_case(access: Access, make_token: TokenFactory) -> None:
    actor = f"officer-{uuid.uuid4().hex[:6]}"
    case = f"CSV-{uuid.uuid4().hex[:6]}"
    async with access.app.state.sessionmaker() as session:
        for i, c in enumerate((case, case, "OTHER-1")):
            await record(session, service="access", action="reads.search", actor=actor, case_number=c,
                         details={"i": i})  # fmt: skip
        await record(session, service="access", action="reads.search", actor="someone-else", case_number=case)
        await session.commit()
    auditor = make_token(subject="aud-csv", roles=["auditor"])
    now = datetime.now(UTC)
    params = {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}
    resp = await access.client.get(
        "/v1/audit/export", params={**params, "actor": actor, "case_number": case}, headers=bearer(auditor)
    )
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [(r["actor"], r["case_number"], r["details"]) for r in rows] == [
        (actor, case, '{"i": 0}'),
        (actor, case, '{"i": 1}'),
    ]
    by_case = list(
        csv.DictReader(
            io.StringIO(
                (
                    await access.client.get(
                        "/v1/audit/export", params={**params, "case_number": case}, headers=bearer(auditor)
                    )
                ).text
            )
        )
    )
    assert {r["actor"] for r in by_case} == {actor, "someone-else"}
    old = await access.client.get(
        "/v1/audit/export",
        params={"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z", "actor": actor},
        headers=bearer(auditor),
    )
    assert old.status_code == 200 and len(list(csv.DictReader(io.StringIO(old.text)))) == 0
    bad = await access.client.get("/v1/audit/export", params={"since": "2026-01-01T00:00:00"}, headers=bearer(auditor))
    assert bad.status_code == 422
    # The export is itself audited.
    exports = await access.audit(auditor, action="audit.export")
    assert exports and exports[-1]["actor"] == "aud-csv"


async def test_breach_record_who_was_told_and_when(access: Access, make_token: TokenFactory) -> None:
    sup = bearer(make_token(subject="sup-breach", roles=["supervisor"]))
    discovered = datetime.now(UTC) - timedelta(days=2)
    body = {
        "what": "A laptop with an export of 40 reads was stolen from a squad car",
        "occurred_at": (discovered - timedelta(hours=5)).isoformat(),
        "discovered_at": discovered.isoformat(),
        "records_affected": 40,
        "notified": [
            {"who": "Legislative Commission on Data Practices", "how": "letter", "at": discovered.isoformat()}
        ],
    }
    resp = await access.client.post("/v1/breaches", json=body, headers=sup)
    assert resp.status_code == 201, resp.text
    breach = resp.json()
    assert breach["status"] == "notified" and breach["notified"][0]["how"] == "letter"
    early = await access.client.post(
        f"/v1/breaches/{breach['breach_id']}/notifications",
        json={
            "notified": [{"who": "data subject", "how": "e-mail", "at": (discovered - timedelta(days=1)).isoformat()}]
        },
        headers=sup,
    )
    assert early.status_code == 422 and "before the breach was discovered" in early.json()["detail"]
    told = await access.client.post(
        f"/v1/breaches/{breach['breach_id']}/notifications",
        json={"notified": [{"who": "40 data subjects", "how": "letter", "at": datetime.now(UTC).isoformat()}]},
        headers=sup,
    )
    assert told.status_code == 200 and len(told.json()["notified"]) == 2
    listed = await access.client.get("/v1/breaches", headers=bearer(make_token(subject="aud-b", roles=["auditor"])))
    assert any(b["breach_id"] == breach["breach_id"] for b in listed.json()["breaches"])
    later = {"notified": [{"who": "x", "how": "letter", "at": datetime.now(UTC).isoformat()}]}
    missing = await access.client.post(f"/v1/breaches/{uuid.uuid4()}/notifications", json=later, headers=sup)
    assert missing.status_code == 404

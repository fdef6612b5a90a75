"""Agency B tries agency A's data through every side door of ingest and hotlist: each is refused (404 for A's
records, 403/409/422 with a reason), and the same act inside A still works. One wired system per module."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.hotlist.bca import extract, row
from tests.ingest.conftest import Officer
from tests.ingest.test_stream_and_internal import _hit
from tests.integration.conftest import System
from tests.test_authz_matrix import AGENTS, CROSS_AGENCY, TWO

A, B = "MN0271200", "MN0279999"
STOLEN = "ABC1234"  # on the state list below
SOON = (datetime.now(UTC) + timedelta(days=5)).isoformat()

# Every endpoint that takes an id, as agency B with agency A's id (tests/test_authz_matrix.py checks the list
# covers them all): filled in as the tests below try them.
CROSS_AGENCY_TRIED: set[tuple[str, str]] = set()


def person(system: System, role: str, agency: str, name: str | None = None) -> dict[str, str]:
    claims: dict[str, Any] = {"agency": agency, "badge": f"{role[:1]}{uuid.uuid4().hex[:5]}"}
    claims["trained_until"] = int(time.time() + 86400)
    token = system.make_token(subject=name or f"{role}-{agency}-{uuid.uuid4().hex[:6]}", roles=[role], **claims)
    return {"Authorization": f"Bearer {token}"}


def officer(system: System, agency: str, unit: str) -> Officer:
    badge = str(uuid.uuid4().int % 1_000_000)
    token = system.make_token(
        subject=f"officer-{agency}-{badge}",
        roles=["officer"],
        badge=badge,
        agency=agency,
        trained_until=int(time.time() + 86400),
    )
    return Officer(system.ingest, token, badge, unit=unit)


async def audit_rows(system: System, action: str) -> list[dict[str, Any]]:
    engine = create_async_engine(system.settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT actor, agency, grant_id, case_number, details, object_ids FROM audit.audit_log "
                    "WHERE action = :a ORDER BY seq"
                ),
                {"a": action},
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


async def test_two_agencies_see_only_their_own(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    bca_server.publish(extract([row("V700000002", STOLEN)]))
    await system.sync()
    hl, ing = system.hotlist, system.ingest
    sup_a, sup_a2, sup_b = (
        person(system, "supervisor", A),
        person(system, "supervisor", A),
        person(system, "supervisor", B),
    )
    unit = f"car-{uuid.uuid4().hex[:6]}"

    # Agency A's car reads a stolen plate: a read, a hit.
    car_a = officer(system, A, unit)
    assert (await car_a.start()).status_code == 201
    read = await car_a.post_read(car_a.meta(plate=STOLEN, state="MN"))
    assert read.status_code == 200, read.text
    read_id = read.json()["read_id"]
    (hit,) = read.json()["hits"]
    hit_id = hit["hit_id"]
    # Its late notice on the unit's stream (hotlist pushes those; the read's own hits came in its answer).
    late = _hit(read_id, f"late-{hit_id}")
    pushed = await ing.post(
        "/v1/internal/hits", json={"hits": [late]}, headers=person(system, "service", A, "svc-hotlist")
    )
    assert pushed.status_code == 200 and pushed.json()["delivered"] == 1, pushed.text

    # --- unit names are unique per agency, and a stream is live events of one's own shift -------------------
    car_b = officer(system, B, unit)  # B's car of the same name
    assert (await car_b.start()).status_code == 201
    b_events = await ing.get(f"/v1/units/{unit}/events", params={"since": 0}, headers=car_b.headers)
    assert b_events.status_code == 200 and all(e["kind"] != "hit" for e in b_events.json()["events"])
    a_events = await ing.get(f"/v1/units/{unit}/events", params={"since": 0}, headers=car_a.headers)
    assert any(e["kind"] == "hit" for e in a_events.json()["events"])
    # Another agency's supervisor: the unit is not B's to follow (B's own unit of that name has no A hit).
    seen_b = await ing.get(f"/v1/units/{unit}/events", params={"since": 0}, headers=sup_b)
    assert seen_b.status_code == 200 and all(e["kind"] != "hit" for e in seen_b.json()["events"])
    # A's supervisor follows A's car live, audited.
    seen_a = await ing.get(f"/v1/units/{unit}/events", params={"since": 0}, headers=sup_a)
    assert any(e["kind"] == "hit" for e in seen_a.json()["events"])
    assert any(r["agency"] == A for r in await audit_rows(system, "stream.follow"))
    # The next shift of A's car does not get the last one's hits (no replay of the past).
    assert (await ing.post(f"/v1/shifts/{car_a.shift_id}/end", headers=car_a.headers)).status_code == 200
    car_a2 = officer(system, A, unit)
    assert (await car_a2.start()).status_code == 201
    later = await ing.get(f"/v1/units/{unit}/events", params={"since": 0}, headers=car_a2.headers)
    assert later.status_code == 200 and all(e["kind"] != "hit" for e in later.json()["events"])
    # Covert hits of A's lists: A's supervisors only.
    refused = await ing.get(f"/v1/agencies/{A}/events", headers=sup_b)
    assert refused.status_code == 403 and "own supervisors" in refused.json()["detail"]
    CROSS_AGENCY_TRIED.add(("GET", "/v1/agencies/{agency}/events"))
    # Shifts: B cannot see or end A's.
    for method, path in (("GET", "/v1/shifts/{shift_id}"), ("POST", "/v1/shifts/{shift_id}/end")):
        resp = await ing.request(method, path.replace("{shift_id}", car_a2.shift_id), headers=sup_b)
        assert resp.status_code == 404, (path, resp.text)
        CROSS_AGENCY_TRIED.add((method, path))
    CROSS_AGENCY_TRIED.update({("GET", "/v1/units/{unit}/events"), ("GET", "/v1/units/{unit}/stream")})

    # --- hits: verification, disposition, pending -------------------------------------------------------------
    b_officer = person(system, "officer", B)
    for path, body in (
        ("/v1/hits/{hit_id}/verification", {"read_accurate": True, "state_matches": True}),
        ("/v1/hits/{hit_id}/dispositions", {"valid": True, "action": "stop_made"}),
    ):
        resp = await hl.post(path.replace("{hit_id}", hit_id), json=body, headers=b_officer)
        assert resp.status_code == 404 and "agency" in resp.json()["detail"], resp.text
        CROSS_AGENCY_TRIED.add(("POST", path))
    assert (await hl.get(f"/v1/hits/{hit_id}", headers=sup_b)).status_code == 404
    CROSS_AGENCY_TRIED.add(("GET", "/v1/hits/{hit_id}"))
    pending_b = await hl.get("/v1/hits/pending", params={"older_than_s": 0}, headers=sup_b)
    assert hit_id not in {h["hit_id"] for h in pending_b.json()["hits"]}
    pending_a = await hl.get("/v1/hits/pending", params={"older_than_s": 0}, headers=sup_a)
    assert hit_id in {h["hit_id"] for h in pending_a.json()["hits"]}
    ok = await hl.post(
        f"/v1/hits/{hit_id}/verification", json={"read_accurate": True, "state_matches": True}, headers=car_a.headers
    )
    assert ok.status_code == 201, ok.text

    # --- holds on reads and on hits ---------------------------------------------------------------------------
    terms = {"kind": "investigation", "case_number": "CR-26-0042", "reason": "evidence of the theft"}
    refused = await ing.post("/v1/holds", json={**terms, "read_ids": [read_id]}, headers=sup_b)
    assert refused.status_code == 404 and "your agency" in refused.json()["detail"]
    held = await ing.post("/v1/holds", json={**terms, "read_ids": [read_id]}, headers=sup_a)
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    assert hold_id not in {h["hold_id"] for h in (await ing.get("/v1/holds", headers=sup_b)).json()["holds"]}
    assert hold_id in {h["hold_id"] for h in (await ing.get("/v1/holds", headers=sup_a)).json()["holds"]}
    # Each listing is audited under the caller's agency, naming the holds it showed (13.824 subd. 7(b)).
    listed = {r["agency"]: r["object_ids"] for r in await audit_rows(system, "holds.list")}
    assert hold_id in listed[A] and hold_id not in listed[B]
    release = await ing.post(f"/v1/holds/{hold_id}/release", json={"reason": "case closed"}, headers=sup_b)
    assert release.status_code == 404
    CROSS_AGENCY_TRIED.add(("POST", "/v1/holds/{hold_id}/release"))
    review = {"note": "still needed for the trial"}
    assert (await ing.post(f"/v1/holds/{hold_id}/reviews", json=review, headers=sup_b)).status_code == 404
    assert (await ing.post(f"/v1/holds/{hold_id}/reviews", json=review, headers=sup_a)).status_code == 201
    due = {"within_days": 3650}
    assert hold_id not in {
        h["hold_id"] for h in (await ing.get("/v1/holds/reviews", params=due, headers=sup_b)).json()["holds"]
    }
    assert hold_id in {
        h["hold_id"] for h in (await ing.get("/v1/holds/reviews", params=due, headers=sup_a)).json()["holds"]
    }
    subject = await ing.post(
        f"/v1/holds/{hold_id}/subject-request",
        data={"metadata": '{"requester": "J. Doe", "charge": "theft", "received_on": "2026-11-01T00:00:00Z"}'},
        files={"document": ("r.pdf", b"%PDF-1.4 request", "application/pdf")},
        headers=sup_b,
    )
    assert subject.status_code == 404, subject.text
    CROSS_AGENCY_TRIED.update(
        {("POST", "/v1/holds/{hold_id}/reviews"), ("POST", "/v1/holds/{hold_id}/subject-request")}
    )
    refused = await hl.post("/v1/hit-holds", json={**terms, "hit_ids": [hit_id]}, headers=sup_b)
    assert refused.status_code == 404
    hit_hold = await hl.post("/v1/hit-holds", json={**terms, "hit_ids": [hit_id]}, headers=sup_a)
    assert hit_hold.status_code == 201, hit_hold.text
    hh = hit_hold.json()["hold_id"]
    assert (
        await hl.post(f"/v1/hit-holds/{hh}/release", json={"reason": "case closed"}, headers=sup_b)
    ).status_code == 404
    CROSS_AGENCY_TRIED.add(("POST", "/v1/hit-holds/{hold_id}/release"))
    assert hh not in {h["hold_id"] for h in (await hl.get("/v1/hit-holds", headers=sup_b)).json()["holds"]}
    assert hh in {h["hold_id"] for h in (await hl.get("/v1/hit-holds", headers=sup_a)).json()["holds"]}
    listed = {r["agency"]: r["object_ids"] for r in await audit_rows(system, "hit_holds.list")}
    assert hh in listed[A] and hh not in listed[B]

    # --- agency lists: past-read matching is gone, covert lists need a case and an expiry, lists scoped ----------
    past = await hl.post("/v1/lists", json={"name": "past", "owner": B, "past_read_matching": True}, headers=sup_b)
    assert past.status_code == 422 and "grant" in past.json()["detail"]
    covert = await hl.post("/v1/lists", json={"name": "cv", "owner": A, "covert": True}, headers=sup_a)
    assert covert.status_code == 422 and "case_number" in covert.json()["detail"]
    made = await hl.post(
        "/v1/lists",
        json={"name": "cv", "owner": A, "covert": True, "case_number": "CR-26-7", "expires_at": SOON},
        headers=sup_a,
    )
    assert made.status_code == 201, made.text
    entry = {"plate": "KXR482", "case_number": "CR-26-7", "reason": "suspect vehicle", "owner": "det. 1",
             "expires_at": SOON}  # fmt: skip
    added = await hl.post("/v1/lists/cv/entries", json=entry, headers=sup_a)
    assert added.status_code == 201 and added.json()["past_read_hits"] == []
    entry_id = added.json()["id"]
    assert "cv" not in {x["name"] for x in (await hl.get("/v1/lists", headers=sup_b)).json()}
    assert (await hl.get("/v1/lists/cv/entries", headers=sup_b)).status_code == 404
    assert (await hl.post("/v1/lists/cv/entries", json=entry, headers=sup_b)).status_code == 404
    assert (await hl.delete(f"/v1/lists/cv/entries/{entry_id}", headers=sup_b)).status_code == 404
    CROSS_AGENCY_TRIED.update(
        {("GET", "/v1/lists/{name}/entries"), ("POST", "/v1/lists/{name}/entries"),
         ("DELETE", "/v1/lists/{name}/entries/{entry_id}")}
    )  # fmt: skip
    # B may have a list of the same name: names are unique per agency.
    same = await hl.post("/v1/lists", json={"name": "cv", "owner": B}, headers=sup_b)
    assert same.status_code == 201, same.text
    assert [e["id"] for e in (await hl.get("/v1/lists/cv/entries", headers=sup_a)).json()] == [entry_id]

    # --- Safe at Home: the recording agency's data only; a listed or held plate needs a second supervisor -------
    reference = f"SAH-SEC-{uuid.uuid4().hex[:6]}"
    request = {"plate": STOLEN, "request_reference": reference, "received_on": datetime.now(UTC).isoformat()}
    by_b = await ing.post("/v1/subject-requests/safe-at-home", json=request, headers=sup_b)
    assert by_b.status_code == 202 and by_b.json()["status"] == "awaiting_confirmation", by_b.text  # listed plate
    b_request = by_b.json()["request_id"]
    confirm = f"/v1/subject-requests/safe-at-home/{b_request}/confirm"
    assert (await ing.post(confirm, headers=sup_a)).status_code == 404  # not A's request
    CROSS_AGENCY_TRIED.add(("POST", "/v1/subject-requests/safe-at-home/{request_id}/confirm"))
    assert (await ing.post(confirm, headers=sup_b)).status_code == 403  # the same supervisor
    done_b = await ing.post(confirm, headers=person(system, "supervisor", B))
    assert done_b.status_code == 200 and done_b.json()["reads_destroyed"] == 0, done_b.text  # A's read stays
    assert (await hl.get(f"/v1/hits/{hit_id}", headers=sup_a)).status_code == 200
    by_a = await ing.post("/v1/subject-requests/safe-at-home", json=request, headers=sup_a)
    assert by_a.status_code == 202, by_a.text
    a_confirm = f"/v1/subject-requests/safe-at-home/{by_a.json()['request_id']}/confirm"
    done_a = await ing.post(a_confirm, headers=sup_a2)
    assert done_a.status_code == 200 and done_a.json()["status"] == "protected", done_a.text
    entries = await audit_rows(system, "subject_request.safe_at_home")
    assert entries and all(STOLEN not in str(e) for e in entries)
    # Each agency's request is audited with its reference, in the request's own transaction.
    recorded = [e for e in entries if e["details"].get("request_reference") == reference]
    assert sorted(e["agency"] for e in recorded) == [A, B]

    # Every id-taking endpoint the authorization matrix assigns to this test was tried across agencies.
    assert {k for k, v in CROSS_AGENCY.items() if v == TWO} - CROSS_AGENCY_TRIED == set()


async def test_agents_are_their_agencys(system: System) -> None:
    admin_a, admin_b = person(system, "admin", A), person(system, "admin", B)
    payload = {
        "kind": "fixed",
        "lat": 45.03,
        "lon": -93.36,
        "placed_on": "2026-01-15",
        "name": f"pole-{uuid.uuid4().hex[:6]}",
    }
    made = await system.ingest.post("/v1/agents", json=payload, headers=admin_a)
    assert made.status_code == 201, made.text
    agent = made.json()["agent_id"]
    tried = {k for k, v in CROSS_AGENCY.items() if v == AGENTS}
    for method, path in sorted(tried):
        body: dict[str, Any] | None = None
        if path.endswith("/location"):
            body = {"lat": 45.04, "lon": -93.37, "placed_on": "2026-02-01"}
        resp = await system.ingest.request(method, path.replace("{agent_id}", str(agent)), json=body, headers=admin_b)
        assert resp.status_code == 404, (method, path, resp.text)
    assert (await system.ingest.get(f"/v1/agents/{agent}", headers=admin_a)).status_code == 200


async def test_quarantine_needs_a_reason_and_is_audited(system: System) -> None:
    admin = person(system, "admin", A)
    refused = await system.ingest.get("/v1/agents/quarantine", headers=admin)
    assert refused.status_code == 422 and "reason" in refused.text
    ok = await system.ingest.get(
        "/v1/agents/quarantine", params={"reason": "agent 7 posts fail since noon"}, headers=admin
    )
    assert ok.status_code == 200, ok.text
    (entry,) = [e for e in await audit_rows(system, "agents.quarantine.view") if e["agency"] == A]
    assert entry["details"]["reason"] == "agent 7 posts fail since noon"


async def test_safe_at_home_with_hotlist_down_is_recorded_and_audited_then_waits(settings, make_token) -> None:  # type: ignore[no-untyped-def]
    from services.ingest.main import Transports, create_app
    from tests.ingest.conftest import StaticTokens, ingest_settings
    from tests.support.apps import running

    own = ingest_settings(settings, ingest_call_hotlist=True)  # its hotlist_url answers nothing
    app = create_app(own, transports=Transports(tokens=StaticTokens(make_token(roles=["service"]))))
    sup = {"Authorization": f"Bearer {make_token(subject='sup-down', roles=['supervisor'], agency=A)}"}
    reference = f"SAH-DOWN-{uuid.uuid4().hex[:6]}"
    async with running(app) as client:
        filed = await client.post(
            "/v1/subject-requests/safe-at-home",
            json={"plate": "DWN 441", "request_reference": reference, "received_on": datetime.now(UTC).isoformat()},
            headers=sup,
        )
    assert filed.status_code == 202 and filed.json()["status"] == "awaiting_confirmation", filed.text
    engine = create_async_engine(own.database_url)
    try:
        async with engine.connect() as conn:
            details = (
                await conn.execute(
                    text(
                        "SELECT details FROM audit.audit_log WHERE action = 'subject_request.safe_at_home' "
                        "AND details->>'request_reference' = :r"
                    ),
                    {"r": reference},
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert details["awaiting_confirmation"] == ["hot list not reachable to check"] and "DWN441" not in str(details)

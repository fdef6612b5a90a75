"""Subject requests as records and holds under review: an exculpatory hold carries who asked, the document (object
store), the case and charge, and a review date; supervisors get the list of holds due for review (the 138.17
schedule as a setting); a review moves the date; releasing needs a reason."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from tests.conftest import TokenFactory
from tests.ingest.conftest import AGENCY


async def test_exculpatory_request_record_and_hold_reviews(ingest, officer_factory, make_token: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    read = await ingest.post("/v1/reads", json=officer.meta(plate="EXC 101"), headers=officer.headers)
    assert read.status_code == 200, read.text
    sup = {"Authorization": f"Bearer {make_token(subject='sup-exc', roles=['supervisor'], agency=AGENCY)}"}
    placed = await ingest.post(
        "/v1/holds",
        json={
            "kind": "exculpatory",
            "case_number": "CR-26-7001",
            "reason": "defendant's written request to preserve",
            "classification": "private",
            "read_ids": [read.json()["read_id"]],
        },
        headers=sup,
    )
    assert placed.status_code == 201, placed.text
    hold_id = placed.json()["hold_id"]
    document = b"%PDF-1.4 request to preserve ALPR data " + hold_id.encode()
    received = datetime.now(UTC) - timedelta(days=3)
    meta = {
        "requester": "J. Doe (counsel: A. Smith)",
        "charge": "Theft of motor vehicle, 609.52",
        "received_on": received.isoformat(),
        "review_on": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
    }
    resp = await ingest.post(
        f"/v1/holds/{hold_id}/subject-request",
        data={"metadata": json.dumps(meta)},
        files={"document": ("request.pdf", document, "application/pdf")},
        headers=sup,
    )
    assert resp.status_code == 201, resp.text
    sr = resp.json()
    assert sr["case_number"] == "CR-26-7001" and sr["charge"].startswith("Theft")
    assert sr["document_sha256"] == hashlib.sha256(document).hexdigest()
    assert sr["document_key"].startswith("subject-requests/") and sr["document_key"].endswith(".pdf")
    bad = await ingest.post(
        f"/v1/holds/{hold_id}/subject-request",
        data={"metadata": json.dumps(meta)},
        files={"document": ("x.exe", b"MZ", "application/x-msdownload")},
        headers=sup,
    )
    assert bad.status_code == 422

    # The reminder list: due within 30 days (its request's review date), not within 1.
    due = (await ingest.get("/v1/holds/reviews", params={"within_days": 30}, headers=sup)).json()
    mine = [h for h in due["holds"] if h["hold_id"] == hold_id]
    assert mine and mine[0]["charge"].startswith("Theft") and mine[0]["overdue"] is False
    soon = (await ingest.get("/v1/holds/reviews", params={"within_days": 1}, headers=sup)).json()
    assert hold_id not in {h["hold_id"] for h in soon["holds"]}

    # A review keeps it to a later date; past the schedule is refused.
    far = (datetime.now(UTC) + timedelta(days=due["review_days"] + 1)).isoformat()
    refused = await ingest.post(
        f"/v1/holds/{hold_id}/reviews", json={"note": "trial set", "next_review_on": far}, headers=sup
    )
    assert refused.status_code == 422
    reviewed = await ingest.post(f"/v1/holds/{hold_id}/reviews", json={"note": "trial set for March"}, headers=sup)
    assert reviewed.status_code == 201, reviewed.text
    assert reviewed.json()["last_reviewed_at"] and reviewed.json()["review_on"] > mine[0]["review_on"]

    # Ending the hold needs a reason; then it leaves the reminder list.
    no_reason = await ingest.post(f"/v1/holds/{hold_id}/release", json={}, headers=sup)
    assert no_reason.status_code == 422
    released = await ingest.post(
        f"/v1/holds/{hold_id}/release", json={"reason": "charge dismissed 2026-11-28"}, headers=sup
    )
    assert released.status_code == 200
    after = (await ingest.get("/v1/holds/reviews", params={"within_days": 3650}, headers=sup)).json()
    assert hold_id not in {h["hold_id"] for h in after["holds"]}
    # An investigation hold takes no subject request.
    inv = await ingest.post(
        "/v1/holds",
        json={"case_number": "CR-26-7002", "reason": "burglary series", "read_ids": [read.json()["read_id"]]},
        headers=sup,
    )
    wrong = await ingest.post(
        f"/v1/holds/{inv.json()['hold_id']}/subject-request",
        data={"metadata": json.dumps(meta)},
        files={"document": ("r.pdf", document, "application/pdf")},
        headers=sup,
    )
    assert wrong.status_code == 409
    await ingest.post(f"/v1/holds/{inv.json()['hold_id']}/release", json={"reason": "test done"}, headers=sup)

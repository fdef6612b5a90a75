"""13.055's duties on a breach record, each with its due date (the agency's target for "without unreasonable delay",
paused while a law-enforcement delay is in force) and `overdue`: the notice to the individuals, to the consumer
reporting agencies over 1,000 of them, the report once the investigation ends, the annual security assessment. Overdue
ones warn on /readyz and count in the gauge the alert rule reads; one agency never sees or touches another's."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.access.conftest import Access, bearer

TARGET = timedelta(days=30)  # ALPR_BREACH_NOTICE_TARGET_DAYS' default
REPORT_TARGET = timedelta(days=10)  # ALPR_BREACH_REPORT_TARGET_DAYS' default


def _agency() -> str:
    return f"MN{uuid.uuid4().int % 10**7:07d}"


def _duty(breach: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = [d for d in breach["duties"] if d["duty"] == name]
    return found[0] if found else None


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _gauge(access: Access) -> dict[str, float]:
    page = (await access.client.get("/metrics")).text
    return {
        m[1]: float(m[2]) for m in re.finditer(r'^alpr_access_breach_duties_overdue\{duty="(\w+)"\} (\S+)$', page, re.M)
    }


async def test_each_duty_has_its_due_date_and_is_warned_when_overdue(access: Access) -> None:
    a, b = _agency(), _agency()
    sup_a = bearer(await access.token(await access.person("supervisor", agency=a)))
    sup_b = bearer(await access.token(await access.person("supervisor", agency=b)))
    aud_a = bearer(await access.token(await access.person("auditor", agency=a)))
    now = datetime.now(UTC)
    discovered = now - timedelta(days=40)
    before = await _gauge(access)

    # A breach of 1,500 individuals discovered 40 days ago, nobody told: both notices overdue; the report waits.
    made = await access.client.post(
        "/v1/breaches",
        json={"what": "An export of reads left on a shared drive", "discovered_at": discovered.isoformat(),
              "individuals_affected": 1500},
        headers=sup_a,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    big = made.json()
    told, cra, report = (_duty(big, n) for n in ("notify_individuals", "notify_consumer_reporting_agencies",
                                                 "investigation_report"))  # fmt: skip
    assert told and cra and report
    assert told["overdue"] and _at(told["due_at"]) == discovered + TARGET and told["done_at"] is None
    assert cra["overdue"] and _at(cra["due_at"]) == discovered + TARGET
    assert report["due_at"] is None and not report["overdue"]
    assert big["overdue"] is True

    # Warned on /readyz (degraded, still ready) and counted in the gauge the alert rule reads.
    ready = await access.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
    warning = ready.json()["warnings"]["breach_duties_overdue"]
    assert "notify individuals" in warning and "consumer reporting agencies" in warning
    counted = await _gauge(access)
    assert counted["notify_individuals"] == before.get("notify_individuals", 0) + 1
    assert counted["notify_consumer_reporting_agencies"] == before.get("notify_consumer_reporting_agencies", 0) + 1

    # Agency B neither sees it nor records anything on it.
    listed_b = (await access.client.get("/v1/breaches", headers=sup_b)).json()["breaches"]
    assert big["breach_id"] not in [x["breach_id"] for x in listed_b]
    bid = big["breach_id"]
    for path, body in (
        (f"/v1/breaches/{bid}/law-enforcement-delay", {"by": "BCA", "reason": "an active investigation",
                                                       "since": now.isoformat()}),
        (f"/v1/breaches/{bid}/law-enforcement-delay/end", {"at": now.isoformat()}),
        (f"/v1/breaches/{bid}/investigation", {"completed_at": now.isoformat()}),
    ):  # fmt: skip
        refused = await access.client.post(path, json=body, headers=sup_b)
        assert refused.status_code == 404 and "your agency" in refused.json()["detail"], (path, refused.text)

    # A small breach under a law-enforcement delay: paused (no due date, never overdue); no duty to the CRAs.
    small = await access.client.post(
        "/v1/breaches",
        json={"what": "A squad laptop stolen", "discovered_at": discovered.isoformat(), "individuals_affected": 200},
        headers=sup_a,
    )
    sid = small.json()["breach_id"]
    assert _duty(small.json(), "notify_consumer_reporting_agencies") is None
    delay = {"by": "Crystal PD investigations", "reason": "notice would tip off the suspect",
             "since": (discovered + timedelta(days=1)).isoformat()}  # fmt: skip
    held = await access.client.post(f"/v1/breaches/{sid}/law-enforcement-delay", json=delay, headers=sup_a)
    assert held.status_code == 200, held.text
    paused = _duty(held.json(), "notify_individuals")
    assert paused and paused["paused"] and paused["due_at"] is None and not paused["overdue"]
    again = await access.client.post(f"/v1/breaches/{sid}/law-enforcement-delay", json=delay, headers=sup_a)
    assert again.status_code == 409
    # Lifted after 19 days: the clock ran 1 day before and runs again: the notice is due 30 + 19 days after discovery.
    lifted = await access.client.post(
        f"/v1/breaches/{sid}/law-enforcement-delay/end",
        json={"at": (discovered + timedelta(days=20)).isoformat()},
        headers=sup_a,
    )
    resumed = _duty(lifted.json(), "notify_individuals")
    assert resumed and _at(resumed["due_at"]) == discovered + TARGET + timedelta(days=19) and not resumed["overdue"]

    # The big breach: individuals told, then the CRAs; the investigation ended 15 days ago, no report: overdue.
    letters = {"who": "1,500 individuals", "how": "letter", "at": now.isoformat(), "to": "individuals"}
    # subd. 2(a): written, and saying that a report will be prepared and how to ask for it, or it is not the notice.
    for wrong, why in (({}, "how to request"), ({"how": "phone", "says_report_and_how_to_request": True}, "written")):
        refused = await access.client.post(
            f"/v1/breaches/{bid}/notifications", json={"notified": [{**letters, **wrong}]}, headers=sup_a
        )
        assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
    letters["says_report_and_how_to_request"] = True
    step = (
        await access.client.post(f"/v1/breaches/{bid}/notifications", json={"notified": [letters]}, headers=sup_a)
    ).json()
    people, cras = _duty(step, "notify_individuals"), _duty(step, "notify_consumer_reporting_agencies")
    assert people and people["done_at"] and cras and cras["overdue"]
    to_cras = {"notified": [{"who": "Equifax, Experian, TransUnion", "how": "letter", "at": now.isoformat(),
                             "to": "consumer_reporting_agencies"}]}  # fmt: skip
    step = (await access.client.post(f"/v1/breaches/{bid}/notifications", json=to_cras, headers=sup_a)).json()
    assert not step["overdue"]
    ended = now - timedelta(days=15)
    step = (
        await access.client.post(
            f"/v1/breaches/{bid}/investigation", json={"completed_at": ended.isoformat()}, headers=sup_a
        )
    ).json()
    late = _duty(step, "investigation_report")
    assert late and _at(late["due_at"]) == ended + REPORT_TARGET and late["overdue"] and step["overdue"]
    assert (await _gauge(access))["investigation_report"] == before.get("investigation_report", 0) + 1
    done = await access.client.post(
        f"/v1/breaches/{bid}/investigation", json={"report": "Type of data: reads. 1,500 individuals."}, headers=sup_a
    )
    assert done.status_code == 200 and done.json()["overdue"] is False
    settled = await _gauge(access)
    assert settled["notify_individuals"] == before.get("notify_individuals", 0)
    assert settled["investigation_report"] == before.get("investigation_report", 0)
    # The agency's auditor reads the same due dates.
    seen = (await access.client.get("/v1/breaches", headers=aud_a)).json()["breaches"]
    assert {x["breach_id"] for x in seen} == {bid, sid}

    # The annual security assessment: the last one 400 days ago is overdue (a year after it); B's is not A's.
    old = date.today() - timedelta(days=400)
    body = {"performed_on": old.isoformat(), "performed_by": "State IT security office", "summary": "Full review."}
    assert (await access.client.post("/v1/security-assessments", json=body, headers=sup_a)).status_code == 201
    status_a = (await access.client.get("/v1/security-assessments", headers=aud_a)).json()
    assert status_a["overdue"] is True and status_a["due_on"] == (old + timedelta(days=365)).isoformat()
    assert "security assessment" in (await access.client.get("/readyz")).json()["warnings"]["breach_duties_overdue"]
    status_b = (await access.client.get("/v1/security-assessments", headers=sup_b)).json()
    assert status_b["assessments"] == [] and status_b["overdue"] is False
    fresh = {**body, "performed_on": date.today().isoformat()}
    assert (await access.client.post("/v1/security-assessments", json=fresh, headers=sup_a)).status_code == 201
    status_a = (await access.client.get("/v1/security-assessments", headers=sup_a)).json()
    assert status_a["overdue"] is False and len(status_a["assessments"]) == 2
    future = {**body, "performed_on": (date.today() + timedelta(days=2)).isoformat()}
    assert (await access.client.post("/v1/security-assessments", json=future, headers=sup_a)).status_code == 422


async def test_an_employees_unauthorized_access_report_names_what_the_statute_asks(access: Access) -> None:
    sup = bearer(await access.token(await access.person("supervisor", agency=_agency())))
    found = {"what": "A dispatcher looked up a neighbour's plate", "unauthorized_by_employee": True,
             "discovered_at": (datetime.now(UTC) - timedelta(days=3)).isoformat()}  # fmt: skip
    early = await access.client.post("/v1/breaches", json={**found, "investigation_report": "done"}, headers=sup)
    assert early.status_code == 422 and "/investigation" in early.json()["detail"]
    bid = (await access.client.post("/v1/breaches", json=found, headers=sup)).json()["breach_id"]
    url = f"/v1/breaches/{bid}/investigation"
    bare = await access.client.post(url, json={"report": "The dispatcher was disciplined."}, headers=sup)
    assert bare.status_code == 422, bare.text
    for missing in ("completed_at", "individuals_affected", "data_types", "responsible_employees", "final_disposition"):
        assert missing in bare.json()["detail"], missing
    ended = datetime.now(UTC) - timedelta(hours=1)
    step = await access.client.post(url, json={"completed_at": ended.isoformat(), "individuals_affected": 1},
                                    headers=sup)  # fmt: skip
    assert _duty(step.json(), "investigation_report")["due_at"]  # type: ignore[index]
    full = {"report": "Reads of one plate viewed without a case.", "data_types": ["plate reads"],
            "responsible_employees": ["Dispatcher J. Doe"], "final_disposition": "written reprimand"}  # fmt: skip
    done = await access.client.post(url, json=full, headers=sup)
    assert done.status_code == 200, done.text
    assert done.json()["report_details"] == {
        "data_types": ["plate reads"], "individuals_affected": 1, "responsible_employees": ["Dispatcher J. Doe"],
        "final_disposition": "written reprimand",
    }  # fmt: skip
    assert _duty(done.json(), "investigation_report")["done_at"]  # type: ignore[index]

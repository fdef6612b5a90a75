"""Access requests: filed as written, never edited (amendments are versions), court orders in the object store,
location histories need a warrant or exigency, supervisors decide with reasons, nobody approves their own."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.access.conftest import AGENCY_ORI, Access, bearer
from tests.conftest import TokenFactory

NOW = datetime.now(UTC)


def form(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_number": "CR-2026-0117",
        "reason": "Burglary at 5600 West Broadway; a silver sedan seen leaving",
        "suspicion_basis": "Witness saw plate starting ABC1 leave the scene at 02:10",
        "plates": ["abc1*"],
        "start": (NOW - timedelta(days=3)).isoformat(),
        "end": (NOW - timedelta(days=1)).isoformat(),
        "area": {"lat": 45.0322, "lon": -93.3602, "radius_m": 2000},
        "warrant_number": "27-CR-26-0117",  # plates with an area: a location history
    }
    body.update(overrides)
    return {"request": json.dumps(body)}


async def file(access: Access, token: str, files: dict[str, Any] | None = None, **overrides: Any) -> httpx.Response:
    return await access.client.post("/v1/requests", data=form(**overrides), files=files, headers=bearer(token))


async def test_filed_request_is_kept_as_filed_and_amendments_are_new_versions(
    access: Access, settings: Any, make_token: TokenFactory
) -> None:
    officer = await access.person("officer")
    token = await access.token(officer)
    pdf = b"%PDF-1.4\n% court order 27-CR-26-1234\n"
    resp = await file(
        access, token, files={"court_order": ("order.pdf", pdf, "application/pdf")}, legal_basis="court_order"
    )
    assert resp.status_code == 201, resp.text
    filed = resp.json()
    assert filed["status"] == "pending" and filed["current_version"] == 1 and filed["requester"] == officer.id
    v1 = filed["versions"][0]
    assert v1["plates"] == ["ABC1*"] and v1["legal_basis"] == "court_order"
    # The order itself is in the object store, reachable by a short-lived link.
    # Served by access to the person it was issued to (their token), each view audited.
    link = httpx.URL(v1["court_order_url"])
    assert (await access.client.get(f"{link.path}?{link.query.decode()}", headers=bearer(token))).content == pdf

    resp = await access.client.post(
        f"/v1/requests/{filed['id']}/versions", data=form(plates=["ABC1*", "ABD1*"]), headers=bearer(token)
    )
    assert resp.status_code == 201, resp.text
    amended = resp.json()
    assert [v["version"] for v in amended["versions"]] == [1, 2]
    assert amended["versions"][0]["plates"] == ["ABC1*"], "version 1 must stay as filed"
    assert amended["versions"][1]["plates"] == ["ABC1*", "ABD1*"]

    # Not even the database owner's app role edits a filed version.
    async with access.app.state.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="record as filed"):
            await conn.execute(text("UPDATE access.request_versions SET reason = 'edited'"))

    mine = (await access.client.get("/v1/requests", headers=bearer(token))).json()
    assert [(r["id"], r["status"], r["current_version"]) for r in mine] == [(filed["id"], "pending", 2)]

    other = await access.token(await access.person("officer"))
    assert (await access.client.get(f"/v1/requests/{filed['id']}", headers=bearer(other))).status_code == 403
    auditor = make_token(subject="aud-1", roles=["auditor"], agency=officer.agency)
    assert (await access.client.get(f"/v1/requests/{filed['id']}", headers=bearer(auditor))).status_code == 200
    # Another agency's auditor does not see it.
    outsider = make_token(subject="aud-2", roles=["auditor"], agency="MN0279999")
    assert (await access.client.get(f"/v1/requests/{filed['id']}", headers=bearer(outsider))).status_code == 403


@pytest.mark.parametrize(
    ("overrides", "files", "status", "detail"),
    [
        ({"warrant_number": None}, None, 422, "warrant number or an exigency attestation"),
        ({"legal_basis": "court_order"}, None, 400, "needs the order itself"),
        ({"plates": ["*"]}, None, 422, "at least two known characters"),
        ({"end": (NOW - timedelta(days=5)).isoformat()}, None, 422, "end must be after start"),
        ({"legal_basis": "court_order"}, {"court_order": ("x.exe", b"MZ\x90\x00", "application/pdf")}, 400, "PDF"),
    ],
)
async def test_bad_requests_are_refused_with_the_reason(
    access: Access, make_token: TokenFactory, overrides: dict[str, Any], files: Any, status: int, detail: str
) -> None:
    token = make_token(subject="officer-x", roles=["officer"], agency="MN0271200")
    resp = await file(access, token, files=files, **overrides)
    assert resp.status_code == status, resp.text
    assert detail in json.dumps(resp.json()["detail"])


async def test_supervisor_decides_never_their_own_and_approval_makes_a_scoped_grant(
    access: Access, make_token: TokenFactory
) -> None:
    officer = await access.person("officer")
    sup = await access.person("supervisor")
    sup2 = await access.person("supervisor")
    officer_token, sup_token, sup2_token = [await access.token(p) for p in (officer, sup, sup2)]

    own = (await file(access, sup_token, case_number="CR-OWN")).json()
    resp = await access.client.post(
        f"/v1/requests/{own['id']}/decision",
        json={"version": 1, "decision": "approve", "reason": "looks fine"},
        headers=bearer(sup_token),
    )
    assert resp.status_code == 403 and "their own" in resp.json()["detail"]
    queue = (await access.client.get("/v1/requests/queue", headers=bearer(sup_token))).json()
    assert own["id"] not in [r["id"] for r in queue]
    assert own["id"] in [
        r["id"] for r in (await access.client.get("/v1/requests/queue", headers=bearer(sup2_token))).json()
    ]

    req = (await file(access, officer_token)).json()
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={
            "version": 1,
            "decision": "approve",
            "reason": "pertinent",
            "expires_at": (NOW + timedelta(days=90)).isoformat(),
        },
        headers=bearer(sup_token),
    )
    assert resp.status_code == 400 and "at most 30 days" in resp.json()["detail"]
    # Another agency's supervisor has no say.
    foreign = make_token(subject="sup-foreign", roles=["supervisor"], agency="MN0620000")
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={"version": 1, "decision": "deny", "reason": "not ours"},
        headers=bearer(foreign),
    )
    assert resp.status_code == 403
    expires = NOW + timedelta(days=5)
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={
            "version": 1,
            "decision": "approve",
            "reason": "pertinent to CR-2026-0117",
            "expires_at": expires.isoformat(),
        },
        headers=bearer(sup_token),
    )
    assert resp.status_code == 200, resp.text
    grant = resp.json()["grant"]
    assert grant["holder"] == officer.id and grant["plates"] == ["ABC1*"] and grant["active"]
    assert datetime.fromisoformat(grant["expires_at"]) == expires
    assert grant["area"] == {"lat": 45.0322, "lon": -93.3602, "radius_m": 2000}
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={"version": 1, "decision": "deny", "reason": "changed my mind"},
        headers=bearer(sup2_token),
    )
    assert resp.status_code == 409

    detail = (await access.client.get(f"/v1/requests/{req['id']}", headers=bearer(officer_token))).json()
    assert detail["status"] == "approved" and detail["decisions"][0]["reason"] == "pertinent to CR-2026-0117"
    assert [g["id"] for g in (await access.client.get("/v1/grants", headers=bearer(officer_token))).json()] == [
        grant["id"]
    ]

    # An amendment after a decision waits again; a decision on the stale version conflicts; denial carries a reason.
    await access.client.post(
        f"/v1/requests/{req['id']}/versions", data=form(plates=["XYZ9*"]), headers=bearer(officer_token)
    )
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={"version": 1, "decision": "deny", "reason": "stale"},
        headers=bearer(sup_token),
    )
    assert resp.status_code == 409 and "version 2" in resp.json()["detail"]
    resp = await access.client.post(
        f"/v1/requests/{req['id']}/decision",
        json={"version": 2, "decision": "deny", "reason": "no link between XYZ9 and the case"},
        headers=bearer(sup_token),
    )
    assert resp.status_code == 200 and resp.json()["grant"] is None
    assert (await access.client.get(f"/v1/requests/{req['id']}", headers=bearer(officer_token))).json()[
        "status"
    ] == "denied"

    auditor = make_token(subject="aud-2", roles=["auditor"], agency=AGENCY_ORI)
    decided = await access.audit(auditor, action="request.decide", actor=sup.id)
    assert [e["outcome"] for e in decided] == ["denied", "denied", "ok", "denied", "ok"]
    assert decided[0]["details"]["reason"].startswith("nobody decides their own")

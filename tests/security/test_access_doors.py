"""Agency B against agency A's requests, grants, disclosures, people and breach records in access; the warrant and area
rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.access.conftest import Access, bearer
from tests.access.test_search import granted

A, B = "MN0271200", "MN0279999"
NOW = datetime.now(UTC)


def body(**overrides: Any) -> dict[str, str]:
    values = {
        "case_number": "CR-2026-0900", "reason": "Armed robbery, Bass Lake Road",
        "suspicion_basis": "A witness saw a plate starting ABC1 flee", "plates": ["ABC1*"],
        "start": (NOW - timedelta(days=4)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat(),
        "area": {"lat": 45.0322, "lon": -93.3602, "radius_m": 1500}, "warrant_number": "27-CR-26-0900", **overrides,
    }  # fmt: skip
    return {"request": json.dumps(values)}


async def test_warrant_and_area_rules(access: Access) -> None:
    token = await access.token(await access.person("officer", agency=A))
    blank = await access.client.post("/v1/requests", data=body(area=None, warrant_number="   "), headers=bearer(token))
    assert blank.status_code == 422 and "warrant_number" in blank.text
    # An area-only search of a 100 km circle needs the warrant a location history needs; a small one does not.
    wide = {"lat": 45.0, "lon": -93.3, "radius_m": 100_000}
    city = await access.client.post(
        "/v1/requests", data=body(area=wide, plates=[], warrant_number=None), headers=bearer(token)
    )
    assert city.status_code == 422 and "needs a warrant" in city.json()["detail"]
    warranted = await access.client.post(
        "/v1/requests", data=body(area=wide, plates=[], warrant_number="27-CR-26-1234"), headers=bearer(token)
    )
    assert warranted.status_code == 201, warranted.text
    small = await access.client.post("/v1/requests", data=body(plates=[], warrant_number=None), headers=bearer(token))
    assert small.status_code == 201, small.text
    # A plate with any area, however small, is a location history.
    plate_here = await access.client.post("/v1/requests", data=body(warrant_number=None), headers=bearer(token))
    assert plate_here.status_code == 422 and "location history" in plate_here.text


async def test_another_agency_cannot_reach_a_request_grant_or_disclosure(access: Access, make_token) -> None:  # type: ignore[no-untyped-def]
    officer_a = await access.token(await access.person("officer", agency=A))
    sup_a = await access.token(await access.person("supervisor", agency=A))
    sup_b = await access.token(await access.person("supervisor", agency=B))
    grant = await granted(access, officer_a, sup_a)

    seen = await access.client.get(f"/v1/requests/{grant['request_id']}", headers=bearer(sup_b))
    assert seen.status_code == 403 and "see a request" in seen.json()["detail"]
    revoke = await access.client.post(
        f"/v1/grants/{grant['id']}/revoke", json={"reason": "not ours to keep open"}, headers=bearer(sup_b)
    )
    assert revoke.status_code == 403 and "another agency" in revoke.json()["detail"]
    share = {
        "grant_id": grant["id"], "recipient_name": "Hennepin County Sheriff", "recipient_ori": "MN0270000",
        "legal_basis": "agency_request", "purpose": "joint robbery investigation", "read_ids": ["r-1"],
    }  # fmt: skip
    refused = await access.client.post("/v1/disclosures", json=share, headers=bearer(sup_b))
    assert refused.status_code == 404 and "your agency" in refused.json()["detail"]
    done = await access.client.post("/v1/disclosures", json=share, headers=bearer(officer_a))
    assert done.status_code == 201, done.text
    auditor_b = make_token(subject="aud-b", roles=["auditor"], agency=B)
    auditor_a = make_token(subject="aud-a", roles=["auditor"], agency=A)
    listed_b = (await access.client.get("/v1/disclosures", headers=bearer(auditor_b))).json()
    listed_a = (await access.client.get("/v1/disclosures", headers=bearer(auditor_a))).json()
    assert done.json()["id"] not in [d["id"] for d in listed_b]
    assert done.json()["id"] in [d["id"] for d in listed_a]


async def test_a_photo_link_opens_only_for_its_viewer_and_each_view_names_them(access: Access, make_token) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from shared.storage import LinkViewer, SignedLinks

    key = f"reads/sec/{NOW:%Y%m%d}/photo.jpg"
    await access.app.state.store.put(key, b"\xff\xd8 photo", "image/jpeg")
    viewer = LinkViewer("officer-a1", A, "grant-7", "CR-2026-0900")
    url = httpx.URL(SignedLinks.from_settings(access.app.state.settings).url(key, 60, viewer))
    path = f"{url.path}?{url.query.decode()}"
    mine = bearer(make_token(subject="officer-a1", roles=["officer"], agency=A))
    # The same subject name in another agency is another person.
    for token in (make_token(subject="officer-b1", roles=["officer"], agency=B),
                  make_token(subject="officer-a1", roles=["officer"], agency=B)):  # fmt: skip
        refused = await access.client.get(path, headers=bearer(token))
        assert refused.status_code == 403 and "another person" in refused.json()["detail"]
    assert (await access.client.get(path)).status_code == 401
    assert (await access.client.get(path, headers=mine)).status_code == 200
    auditor = make_token(subject="aud-a", roles=["auditor"], agency=A)
    views = await access.audit(auditor, action="image.view")
    (ok,) = [v for v in views if v["object_ids"] == [key] and v["outcome"] == "ok"]
    assert (ok["actor"], ok["agency"], ok["grant_id"], ok["case_number"]) == (
        "officer-a1",
        A,
        "grant-7",
        "CR-2026-0900",
    )


ACCOUNT_DOORS = ("unlock", "disable", "enable", "password")


async def test_an_agencys_people_are_its_own_administrators_to_manage(access: Access) -> None:
    officer_a = await access.person("officer", agency=A)
    admin_a = await access.token(await access.person("admin", agency=A))
    admin_b = await access.token(await access.person("admin", agency=B))
    for door in ACCOUNT_DOORS:
        extra = {"json": {"password": "a new long passphrase"}} if door == "password" else {}
        refused = await access.client.post(f"/v1/users/{officer_a.id}/{door}", headers=bearer(admin_b), **extra)
        assert refused.status_code == 404 and "your agency" in refused.json()["detail"], (door, refused.text)
    # Nothing changed: the officer still logs in with the old password; A's administrator still manages them.
    assert (await access.login(officer_a)).status_code == 200
    disabled = await access.client.post(f"/v1/users/{officer_a.id}/disable", headers=bearer(admin_a))
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True


async def test_a_breach_record_is_its_agencys(access: Access) -> None:
    sup_a = bearer(await access.token(await access.person("supervisor", agency=A)))
    sup_b = bearer(await access.token(await access.person("supervisor", agency=B)))
    found = {"what": "A laptop with exported reads was stolen", "discovered_at": (NOW - timedelta(hours=2)).isoformat()}
    created = await access.client.post("/v1/breaches", json=found, headers=sup_a)
    assert created.status_code == 201, created.text
    breach_id = created.json()["breach_id"]
    told = {"notified": [{"who": "the BCA", "how": "letter", "at": datetime.now(UTC).isoformat()}]}

    refused = await access.client.post(f"/v1/breaches/{breach_id}/notifications", json=told, headers=sup_b)
    assert refused.status_code == 404 and "your agency" in refused.json()["detail"]
    listed_b = (await access.client.get("/v1/breaches", headers=sup_b)).json()["breaches"]
    assert breach_id not in [b["breach_id"] for b in listed_b]
    # A's supervisor still sees it, untouched by B, and adds the notification.
    listed_a = (await access.client.get("/v1/breaches", headers=sup_a)).json()["breaches"]
    assert [b["notified"] for b in listed_a if b["breach_id"] == breach_id] == [[]]
    added = await access.client.post(f"/v1/breaches/{breach_id}/notifications", json=told, headers=sup_a)
    assert added.status_code == 200 and added.json()["status"] == "notified", added.text

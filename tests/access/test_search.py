"""Archived-read search answers only inside an active grant that covers the query; everything else is 403 with the
reason, audited, and never reaches the read archive. The allowed path runs against a small app that serves ingest's
search contract (tests/access/reads_contract.py); the real end-to-end test comes when ingest's endpoint lands."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.access.main import create_app
from services.access.scope import pattern_covers
from shared.settings import Settings
from shared.storage import LinkViewer, SignedLinks
from tests.access.conftest import AGENCY_ORI, Access, bearer
from tests.access.reads_contract import reads_app
from tests.conftest import TokenFactory
from tests.support.apps import running

NOW = datetime.now(UTC).replace(microsecond=0)
SCENE = {"lat": 45.0322, "lon": -93.3602, "radius_m": 2000}
JPEG = b"\xff\xd8\xff\xe0 a plate photo"


def read(
    plate: str, days_ago: float, *, lat: float = 45.0330, lon: float = -93.3600, image: str | None = None
) -> dict[str, Any]:
    return {
        "read_id": str(uuid.uuid4()), "plate": plate, "state": "MN",
        "captured_at": (NOW - timedelta(days=days_ago)).isoformat(), "lat": lat, "lon": lon, "unit": "CR-12",
        "camera": "front", "agency": AGENCY_ORI, "image_key": image, "crop_key": None,
    }  # fmt: skip


@pytest.fixture
async def world(access_settings: Settings) -> AsyncIterator[tuple[Access, list[dict[str, Any]], Any]]:
    rows: list[dict[str, Any]] = []
    archive = reads_app(access_settings, rows)
    app = create_app(access_settings, ingest_transport=httpx.ASGITransport(app=archive))
    async with running(app) as client:
        yield Access(app, client), rows, archive


async def granted(access: Access, requester_token: str, sup_token: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "case_number": "CR-2026-0200", "reason": "Armed robbery, Bass Lake Road",
        "suspicion_basis": "Two witnesses saw a plate starting ABC1 flee", "plates": ["ABC1*"],
        "start": (NOW - timedelta(days=4)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat(), "area": SCENE,
        "warrant_number": "27-CR-26-0200", **overrides,
    }  # fmt: skip
    filed = await access.client.post(
        "/v1/requests", data={"request": json.dumps(body)}, headers=bearer(requester_token)
    )
    assert filed.status_code == 201, filed.text
    resp = await access.client.post(
        f"/v1/requests/{filed.json()['id']}/decision",
        json={"version": 1, "decision": "approve", "reason": "pertinent to an open robbery case"},
        headers=bearer(sup_token),
    )
    assert resp.status_code == 200, resp.text
    grant: dict[str, Any] = resp.json()["grant"]
    return grant


def query(grant: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "grant_id": grant["id"], "plates": ["ABC1*"], "misread_tolerant": True,
        "start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(days=2)).isoformat(),
        "area": {"lat": 45.0325, "lon": -93.3601, "radius_m": 500}, **overrides,
    }  # fmt: skip


async def test_search_inside_the_grant_returns_reads_with_presigned_images_and_is_audited(
    world: Any, make_token: TokenFactory
) -> None:
    access, rows, archive = world
    store = access.app.state.store
    await store.put("reads/2026/test/abc123.jpg", JPEG, "image/jpeg")
    rows += [
        read("ABC123", 2.5, image="reads/2026/test/abc123.jpg"),
        read("A8C123", 2.2),  # the same plate, misread (B as 8)
        read("ABC199", 6),  # before the window
        read("XYZ999", 2.5),  # another plate
    ]
    officer, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer), await access.token(sup)
    grant = await granted(access, officer_token, sup_token)

    resp = await access.client.post("/v1/reads/search", json=query(grant), headers=bearer(officer_token))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["plate"] for r in body["reads"]] == ["ABC123", "A8C123"]
    assert body["count"] == 2 and body["case_number"] == "CR-2026-0200" and body["next_cursor"] is None
    assert "13.824 applies to the recipient" in body["recipient_notice"]["statute"]  # subd. 4(b)
    assert body["recipient_notice"]["classification"].startswith("private data")
    # The link is access's own, whatever the store (S3 here): access serves the photo and audits the view.
    link = httpx.URL(body["reads"][0]["image_url"])
    viewed = await access.client.get(f"{link.path}?{link.query.decode()}", headers=bearer(officer_token))
    assert viewed.status_code == 200 and viewed.content == JPEG
    assert body["reads"][1]["image_url"] is None
    views = await access.audit(make_token(subject="aud-s3", roles=["auditor"], agency=AGENCY_ORI), action="image.view")
    assert [e["object_ids"] for e in views if e["object_ids"] == ["reads/2026/test/abc123.jpg"]]
    caller, sent = archive.state.calls[-1]
    assert caller == "service:access" and sent.plates == ["ABC1*"] and sent.misread_tolerant

    page = await access.client.post("/v1/reads/search", json=query(grant, limit=1), headers=bearer(officer_token))
    assert [r["plate"] for r in page.json()["reads"]] == ["ABC123"] and page.json()["next_cursor"]
    page2 = await access.client.post(
        "/v1/reads/search", json=query(grant, limit=1, cursor=page.json()["next_cursor"]), headers=bearer(officer_token)
    )
    assert [r["plate"] for r in page2.json()["reads"]] == ["A8C123"]

    auditor = make_token(subject="aud-s", roles=["auditor"], agency=AGENCY_ORI)
    entries = await access.audit(auditor, action="reads.search", grant_id=grant["id"])
    assert [e["record_count"] for e in entries] == [2, 1, 1]
    first = entries[0]
    assert first["actor"] == officer.id and first["case_number"] == "CR-2026-0200" and first["outcome"] == "ok"
    assert first["details"]["query"]["plates"] == ["ABC1*"] and first["details"]["token_id"]
    assert sorted(first["object_ids"]) == sorted(r["read_id"] for r in body["reads"])


async def test_queries_outside_the_grant_are_refused_with_the_reason(world: Any, make_token: TokenFactory) -> None:
    access, rows, archive = world
    officer, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer), await access.token(sup)
    grant = await granted(access, officer_token, sup_token)
    other_token = await access.token(await access.person("officer"))
    untrained = make_token(subject=officer.id, roles=["officer"], agency=AGENCY_ORI, trained_until=None)

    cases = [
        (officer_token, query(grant, plates=["XYZ9*"]), "outside the grant's plates"),
        (officer_token, query(grant, plates=["AB*"]), "outside the grant's plates"),
        (officer_token, query(grant, start=(NOW - timedelta(days=10)).isoformat()), "outside the grant's dates"),
        (officer_token, query(grant, area={"lat": 44.98, "lon": -93.27, "radius_m": 500}), "area is outside"),
        (officer_token, query(grant, area=None), "the grant covers plates ABC1* only inside an area"),
        (other_token, query(grant), "given to someone else"),
        (untrained, query(grant), "training is not current"),
        (officer_token, query(grant, grant_id=str(uuid.uuid4())), "no such grant"),
    ]
    for token, body, reason in cases:
        resp = await access.client.post("/v1/reads/search", json=body, headers=bearer(token))
        assert resp.status_code in (403, 404), (reason, resp.text)
        assert reason in resp.json()["detail"]
    assert archive.state.calls == [], "a refused query must never reach the read archive"

    # Expired, then revoked.
    async with access.app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE access.grants SET expires_at = :t WHERE id = :g"),
            {"t": NOW - timedelta(minutes=1), "g": grant["id"]},
        )
    resp = await access.client.post("/v1/reads/search", json=query(grant), headers=bearer(officer_token))
    assert resp.status_code == 403 and "expired" in resp.json()["detail"]
    resp = await access.client.post(
        f"/v1/grants/{grant['id']}/revoke", json={"reason": "case closed"}, headers=bearer(sup_token)
    )
    assert resp.status_code == 200 and resp.json()["active"] is False
    resp = await access.client.post("/v1/reads/search", json=query(grant), headers=bearer(officer_token))
    assert resp.status_code == 403 and "revoked: case closed" in resp.json()["detail"]

    auditor = make_token(subject="aud-r", roles=["auditor"], agency=AGENCY_ORI)
    denied = await access.audit(auditor, action="reads.search", outcome="denied")
    reasons = [e["details"]["reason"] for e in denied if e["grant_id"] == grant["id"]]
    # The untrained officer is refused at the role gate, before any grant is read (as a wrong role is): 8 here.
    assert len(reasons) == 8 and any("someone else" in r for r in reasons)


async def test_location_history_needs_a_warrant_and_agency_searches_are_disclosures(
    world: Any, make_token: TokenFactory
) -> None:
    access, rows, archive = world
    rows += [read("KLM456", 2.5, lat=45.05, lon=-93.30), read("KLM456", 2.4, lat=44.95, lon=-93.20)]
    client_id, secret = await access.agency_client("Robbinsdale PD", "MN0270900")
    agency_token = await access.client_token(client_id, secret)
    sup_token = await access.token(await access.person("supervisor"))
    grant = await granted(
        access, agency_token, sup_token, plates=["KLM456"], area=None, warrant_number="27-CR-26-9876",
        legal_basis="agency_request", case_number="RPD-26-555",
    )  # fmt: skip
    assert grant["warrant_number"] == "27-CR-26-9876"
    resp = await access.client.post(
        "/v1/reads/search", json=query(grant, plates=["KLM456"], area=None, misread_tolerant=False),
        headers=bearer(agency_token),
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    assert resp.json()["count"] == 2  # both places: a location history, allowed by the warrant

    disclosures = (await access.client.get("/v1/disclosures", headers=bearer(sup_token))).json()
    mine = [d for d in disclosures if d["grant_id"] == grant["id"]]
    assert len(mine) == 1 and mine[0]["recipient_ori"] == "MN0270900" and mine[0]["record_count"] == 2
    assert mine[0]["recipient_name"] == "Robbinsdale PD" and mine[0]["legal_basis"] == "agency_request"


async def test_holder_records_a_disclosure_others_may_not(world: Any, make_token: TokenFactory) -> None:
    access, _, _ = world
    officer, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer), await access.token(sup)
    grant = await granted(access, officer_token, sup_token)
    share = {
        "grant_id": grant["id"], "recipient_name": "Hennepin County Sheriff", "recipient_ori": "MN0270000",
        "legal_basis": "agency_request", "purpose": "joint robbery investigation", "read_ids": ["r-1", "r-2"],
    }  # fmt: skip
    other_token = await access.token(await access.person("officer"))
    assert (await access.client.post("/v1/disclosures", json=share, headers=bearer(other_token))).status_code == 403
    resp = await access.client.post("/v1/disclosures", json=share, headers=bearer(officer_token))
    assert resp.status_code == 201 and resp.json()["record_count"] == 2
    auditor = make_token(subject="aud-d", roles=["auditor"], agency="MN0271200")
    entries = await access.audit(auditor, action="disclosure", grant_id=grant["id"])
    assert len(entries) == 1 and entries[0]["object_ids"] == ["r-1", "r-2"]
    assert entries[0]["details"]["recipient"] == "Hennepin County Sheriff"
    listed = (await access.client.get("/v1/disclosures", headers=bearer(auditor))).json()
    assert resp.json()["id"] in [d["id"] for d in listed]


async def test_read_archive_down_is_503(access_settings: Settings) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    app = create_app(access_settings, ingest_transport=httpx.MockTransport(refuse))
    async with running(app) as client:
        access = Access(app, client)
        officer, sup = await access.person("officer"), await access.person("supervisor")
        officer_token = await access.token(officer)
        grant = await granted(access, officer_token, await access.token(sup))
        resp = await client.post("/v1/reads/search", json=query(grant), headers=bearer(officer_token))
    assert resp.status_code == 503 and resp.headers["retry-after"] and "unreachable" in resp.json()["detail"]


async def test_local_store_links_are_served_by_access_checked_and_audited(
    local_settings: Settings, make_token: TokenFactory
) -> None:
    from tests.access.conftest import CHEAP_ARGON2

    app = create_app(local_settings.model_copy(update=CHEAP_ARGON2))
    async with running(app) as client:
        store = app.state.store
        await store.put("reads/local/x.jpg", JPEG, "image/jpeg")
        links = SignedLinks.from_settings(app.state.settings)
        viewer = LinkViewer("officer-o", "MN0271200", "g-1", "CR-26-1")
        me = bearer(make_token(subject="officer-o", roles=["officer"], agency="MN0271200"))
        url = httpx.URL(links.url("reads/local/x.jpg", 60, viewer))
        path = f"{url.path}?{url.query.decode()}"
        resp = await client.get(path, headers=me)
        assert resp.status_code == 200 and resp.content == JPEG and resp.headers["content-type"] == "image/jpeg"
        bad_links = REGISTRY.get_sample_value("alpr_auth_failures_total", {"service": "access", "reason": "bad_link"})
        assert (await client.get(path.replace("signature=", "signature=0"), headers=me)).status_code == 403
        expired = httpx.URL(links.url("reads/local/x.jpg", -5, viewer))
        assert (await client.get(f"{expired.path}?{expired.query.decode()}", headers=me)).status_code == 403
        # Bad links are counted, not each written to the audit chain (nothing was shown).
        after = REGISTRY.get_sample_value("alpr_auth_failures_total", {"service": "access", "reason": "bad_link"})
        assert (after or 0) - (bad_links or 0) == 2
        # A forwarded link opens for nobody else, and not without a token.
        other = bearer(make_token(subject="officer-x", roles=["officer"], agency="MN0271200"))
        forwarded = await client.get(path, headers=other)
        assert forwarded.status_code == 403 and "another person" in forwarded.json()["detail"]
        assert (await client.get(path)).status_code == 401
        auditor = make_token(subject="aud-o", roles=["auditor"], agency=AGENCY_ORI)
        views = (
            await client.get("/v1/audit", params={"action": "image.view", "limit": 500}, headers=bearer(auditor))
        ).json()
        mine = [e for e in views["entries"] if e["object_ids"] == ["reads/local/x.jpg"]]
        assert [e["outcome"] for e in mine][-2:] == ["ok", "denied"]  # the forwarded link's refusal
        # Each view names its viewer: actor, agency, grant, case.
        ok = [e for e in mine if e["outcome"] == "ok"][-1]
        assert (ok["actor"], ok["agency"], ok["grant_id"], ok["case_number"]) == (
            "officer-o", "MN0271200", "g-1", "CR-26-1"
        )  # fmt: skip


@pytest.mark.parametrize(
    ("grant", "query", "tolerant", "covered"),
    [
        ("ABC1*", "ABC123", False, True),
        ("ABC1*", "ABC1??", False, True),
        ("ABC1*", "ABC1*", False, True),
        ("ABC1*", "AB*", False, False),
        ("ABC1??", "ABC1*", False, False),
        ("ABC123", "A8C123", False, False),
        ("ABC123", "A8C123", True, True),
        ("ABC?23", "ABC*23", False, False),
        ("*123", "ABC123", False, True),
    ],
)
def test_plate_pattern_coverage(grant: str, query: str, tolerant: bool, covered: bool) -> None:
    assert pattern_covers(grant, query, tolerant=tolerant) is covered


async def test_a_court_order_request_is_filed_with_the_order_and_its_searches_disclosed_as_such(
    world: Any, make_token: TokenFactory
) -> None:
    """legal_basis=court_order end to end: the order is stored with its hash and linked to the request, the grant
    searches, and the search is recorded as a disclosure under the court order."""
    import hashlib

    access, rows, archive = world
    rows += [read("KLM789", 2.5)]
    client_id, secret = await access.agency_client("Hennepin County Attorney", "MN0270000")
    agency_token = await access.client_token(client_id, secret)
    sup_token = await access.token(await access.person("supervisor"))
    order = b"%PDF-1.4\n% Order for ALPR data, 27-CR-26-5555\n"
    body = {
        "case_number": "27-CR-26-5555", "reason": "court-ordered disclosure", "suspicion_basis": "the order",
        "legal_basis": "court_order", "plates": ["KLM789"], "area": SCENE, "warrant_number": "27-CR-26-5555",
        "start": (NOW - timedelta(days=4)).isoformat(), "end": (NOW - timedelta(days=1)).isoformat(),
    }  # fmt: skip
    filed = await access.client.post(
        "/v1/requests", data={"request": json.dumps(body)},
        files={"court_order": ("order.pdf", order, "application/pdf")}, headers=bearer(agency_token),
    )  # fmt: skip
    assert filed.status_code == 201, filed.text
    shown = (await access.client.get(f"/v1/requests/{filed.json()['id']}", headers=bearer(sup_token))).json()
    version = shown["versions"][0]
    assert version["court_order_sha256"] == hashlib.sha256(order).hexdigest() and version["court_order_url"]
    decided = await access.client.post(
        f"/v1/requests/{filed.json()['id']}/decision",
        json={"version": 1, "decision": "approve", "reason": "order reviewed"}, headers=bearer(sup_token),
    )  # fmt: skip
    assert decided.status_code == 200, decided.text
    grant = decided.json()["grant"]
    resp = await access.client.post(
        "/v1/reads/search", json=query(grant, plates=["KLM789"], misread_tolerant=False), headers=bearer(agency_token)
    )
    assert resp.status_code == 200 and resp.json()["count"] == 1, resp.text
    disclosures = (await access.client.get("/v1/disclosures", headers=bearer(sup_token))).json()
    mine = [d for d in disclosures if d["grant_id"] == grant["id"]]
    assert len(mine) == 1 and mine[0]["legal_basis"] == "court_order" and mine[0]["recipient_ori"] == "MN0270000"

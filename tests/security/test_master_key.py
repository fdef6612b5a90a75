"""No role is a master key (issue 26): an agency's administrator reaches its own agency's people and clients only,
never the service identity; a service token opens no stored read without the grant and agency it serves; hot-list
matching answers for the caller's agency; an untrained officer opens no data door."""

from __future__ import annotations

import asyncio
import json
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from alpr.cli import main
from services.access import identity
from shared.acting_for import act_for_claims
from shared.settings import Settings
from tests.access.conftest import Access, bearer
from tests.access.test_cli import cli_env  # noqa: F401  (fixture)
from tests.conftest import TokenFactory
from tests.hotlist.bca import extract, row
from tests.integration.conftest import System

A, B = "MN0271200", "MN0279999"


async def _service_client(access: Access, service: str = "hotlist") -> tuple[str, str]:
    async with access.app.state.sessionmaker() as session:
        client, secret = await identity.create_client(session, name=f"service:{service}", role="service")
        await session.commit()
    return client.client_id, secret


async def test_an_agency_admin_reaches_only_its_own_people_and_clients_never_the_service(
    access: Access, make_token: TokenFactory
) -> None:
    admin_a = make_token(subject=f"admin-a-{uuid.uuid4().hex[:6]}", roles=["admin"], agency=A)
    own_person = await access.person("officer", agency=A)
    other_person = await access.person("officer", agency=B)
    own_client = await access.agency_client("Crystal PD partner", ori=A)
    other_client = await access.agency_client("Other PD", ori=B)
    service_id, service_secret = await _service_client(access)

    listed = await access.client.get("/v1/users", headers=bearer(admin_a))
    assert listed.status_code == 200, listed.text
    agencies = {u["agency"] for u in listed.json()}
    assert agencies == {A} and own_person.id in {u["id"] for u in listed.json()}

    user_routes: list[tuple[str, dict[str, Any] | None]] = [
        ("unlock", None),
        ("disable", None),
        ("enable", None),
        ("password", {"password": "an attacker's passphrase"}),
    ]
    for action, body in user_routes:
        resp = await access.client.post(f"/v1/users/{other_person.id}/{action}", json=body, headers=bearer(admin_a))
        assert resp.status_code == 404, (action, resp.text)
    for client_id in (other_client[0], service_id):
        for action in ("rotate-secret", "disable", "enable"):
            resp = await access.client.post(f"/v1/clients/{client_id}/{action}", headers=bearer(admin_a))
            assert resp.status_code == 404 and "client_secret" not in resp.text, (client_id, action, resp.text)
    # Nothing changed: the other agency's client and the service still log in with their secrets.
    assert await access.client_token(*other_client)
    assert await access.client_token(service_id, service_secret)
    assert (await access.login(other_person)).status_code == 200

    # The admin's own agency is theirs to administer.
    for action in ("disable", "enable", "unlock"):
        resp = await access.client.post(f"/v1/users/{own_person.id}/{action}", headers=bearer(admin_a))
        assert resp.status_code == 200, (action, resp.text)
    rotated = await access.client.post(f"/v1/clients/{own_client[0]}/rotate-secret", headers=bearer(admin_a))
    assert rotated.status_code == 200 and rotated.json()["client_secret"], rotated.text


INTERNAL_READ_DOORS = (
    ("ingest", "/v1/internal/reads/search"),
    ("ingest", "/v1/internal/reads/evidence"),
    ("ingest", "/v1/internal/agents/quarantine/post"),
    ("hotlist", "/v1/internal/hits/of-read"),
)


async def test_a_service_token_without_a_grant_or_its_agency_reads_nothing(system: System) -> None:
    now = datetime.now(UTC)
    unit = f"car-{uuid.uuid4().hex[:6]}"
    plate = f"Q{uuid.uuid4().hex[:4].upper()}7"
    token = system.make_token(
        subject=f"officer-{unit}", roles=["officer"], badge="4242", agency=A, trained_until=int(time.time() + 86400)
    )
    from tests.ingest.conftest import Officer

    car = Officer(system.ingest, token, "4242", unit=unit)
    assert (await car.start()).status_code == 201
    read = await car.post_read(car.meta(plate=plate, state="MN"))
    assert read.status_code == 200, read.text
    read_id = read.json()["read_id"]
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(minutes=5)).isoformat()}
    bodies: dict[str, dict[str, Any]] = {
        "/v1/internal/reads/search": {"plates": [plate], **window, "agency": A},
        "/v1/internal/reads/evidence": {"read_id": read_id, "agency": A},
        "/v1/internal/agents/quarantine/post": {"post_id": str(uuid.uuid4()), "agency": A},
        "/v1/internal/hits/of-read": {"read_id": read_id, "agency": A},
    }
    clients = {"ingest": system.ingest, "hotlist": system.hotlist}

    def headers(**claims: Any) -> dict[str, str]:
        claims = {"roles": ["service"], **claims}
        return {"Authorization": f"Bearer {system.make_token(subject='svc', **claims)}"}

    for service, path in INTERNAL_READ_DOORS:
        client: httpx.AsyncClient = clients[service]
        body = bodies[path]
        # A plain service token (what a client-credentials grant gives), with or without an agency: refused.
        for hdrs in (headers(), headers(agency=A)):
            resp = await client.post(path, json=body, headers=hdrs)
            assert resp.status_code == 403, (path, resp.text)
        # A token for one agency's grant asking for another agency's data, or for another query: refused.
        other_agency = {**body, "agency": B}
        resp = await client.post(path, json=other_agency, headers=headers(**act_for_claims("g-1", A, body)))
        assert resp.status_code == 403 and "agency" in resp.json()["detail"], (path, resp.text)
        if "read_id" in body or "post_id" in body:
            key = "read_id" if "read_id" in body else "post_id"
            widened = {**body, key: str(uuid.uuid4())}
        else:
            widened = {**body, "plates": ["Q*"]}
        resp = await client.post(path, json=widened, headers=headers(**act_for_claims("g-1", A, body)))
        assert resp.status_code == 403 and "not the one" in resp.json()["detail"], (path, resp.text)
        # An officer's token is no service.
        resp = await client.post(path, json=body, headers=car.headers)
        assert resp.status_code == 403, (path, resp.text)

    # The token access signs for the grant's own query is answered (the search: the read; its agency's only).
    body = bodies["/v1/internal/reads/search"]
    ok = await system.ingest.post(
        "/v1/internal/reads/search", json=body, headers=headers(**act_for_claims("g-1", A, body))
    )
    assert ok.status_code == 200 and [r["read_id"] for r in ok.json()["reads"]] == [read_id], ok.text
    b_body = {**body, "agency": B}
    none = await system.ingest.post(
        "/v1/internal/reads/search", json=b_body, headers=headers(**act_for_claims("g-2", B, b_body))
    )
    assert none.status_code == 200 and none.json()["reads"] == [], none.text


async def test_matching_answers_for_the_callers_agency_not_the_body(system: System, bca_server: Any) -> None:
    sup_b = system.auth("supervisor", agency=B, trained_until=int(time.time() + 86400))
    until = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    listing = {"name": f"covert-{uuid.uuid4().hex[:6]}", "owner": "B narcotics", "covert": True}
    created = await system.hotlist.post(
        "/v1/lists", json={**listing, "case_number": "24-000123", "expires_at": until}, headers=sup_b
    )
    assert created.status_code == 201, created.text
    name = created.json()["name"]
    plate = f"K{uuid.uuid4().hex[:5].upper()}"
    entry = await system.hotlist.post(
        f"/v1/lists/{name}/entries",
        json={
            "plate": plate,
            "reason": "covert surveillance",
            "case_number": "24-000123",
            "owner": "B",
            "expires_at": until,
        },
        headers=sup_b,
    )
    assert entry.status_code in (200, 201), entry.text
    read = {"read_id": f"probe-{uuid.uuid4().hex[:6]}", "plate": plate, "captured_at": datetime.now(UTC).isoformat()}

    admin_a = system.auth("admin", agency=A)
    probe = await system.hotlist.post("/v1/match", json={**read, "agency": B}, headers=admin_a)
    assert probe.status_code == 200 and probe.json()["hits"] == [], probe.text
    batch = await system.hotlist.post("/v1/match/batch", json={"reads": [{**read, "agency": B}]}, headers=admin_a)
    assert batch.status_code == 200 and batch.json()["results"][0]["hits"] == [], batch.text
    pending = await system.hotlist.get("/v1/hits/pending", headers=sup_b)
    assert pending.status_code == 200 and all(h["read_id"] != read["read_id"] for h in pending.json()["hits"])
    # The service, matching a read of agency B that it states, finds B's covert entry (for B's stream).
    service = system.auth("service")
    found = await system.hotlist.post(
        "/v1/match", json={**read, "read_id": f"svc-{uuid.uuid4().hex[:6]}", "agency": B}, headers=service
    )
    assert found.status_code == 200 and len(found.json()["hits"]) == 1, found.text


async def test_an_untrained_officer_opens_no_data_door(system: System, bca_server: Any) -> None:
    lapsed = int(time.time() - 3600)
    current = int(time.time() + 86400)
    doors = {
        "officer": [
            (system.hotlist, "/v1/hotlist/list"),
            (system.hotlist, "/v1/hotlist/agency-entries"),
            (system.hotlist, "/v1/hotlist/version"),
        ],
        "supervisor": [
            (system.hotlist, "/v1/hits/pending"),
            (system.hotlist, "/v1/lists"),
            (system.ingest, "/v1/holds"),
            (system.ingest, f"/v1/agencies/{A}/events"),
        ],
    }
    bca_server.publish(extract([row("V700000031", "ZZQ4321")]))
    await system.sync()
    for role, paths in doors.items():
        for client, path in paths:
            for trained_until in (lapsed, None):
                claims: dict[str, Any] = {"agency": A, "badge": "77", "trained_until": trained_until}
                resp = await client.get(path, headers=system.auth(role, **claims))
                assert resp.status_code == 403 and "training" in resp.json()["detail"], (role, path, resp.text)
            trained = await client.get(path, headers=system.auth(role, agency=A, badge="77", trained_until=current))
            assert trained.status_code == 200, (role, path, trained.text)
    # whoami opens no data: an untrained officer still learns who their token says they are.
    me = await system.ingest.get("/v1/whoami", headers=system.auth("officer", agency=A, trained_until=lapsed))
    assert me.status_code == 200


@pytest.mark.usefixtures("cli_env")
async def test_the_service_secret_is_rotated_on_the_host_only(access: Access, settings: Settings) -> None:
    service_id, old = await _service_client(access)
    path = settings.data_dir / "service-hotlist.json"
    path.write_text(json.dumps({"client_id": service_id, "client_secret": old}))
    try:
        code = await asyncio.to_thread(main, ["access", "rotate-service-secret", "--service", "hotlist"])
        assert code == 0
        saved = json.loads(path.read_text())
        assert saved["client_id"] == service_id and saved["client_secret"] != old
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        refused = await access.client.post(
            "/v1/token", data={"grant_type": "client_credentials", "client_id": service_id, "client_secret": old}
        )
        assert refused.status_code == 401
        assert await access.client_token(service_id, saved["client_secret"])
    finally:
        path.unlink()

"""Each calling service has its own key (issue 26): access names the service in the token it issues, and each
internal route answers only the service whose calls it serves. A stolen key of one service reaches only that
service's calls: ingest's cannot file hits or learn which reads are held, hotlist's cannot state another agency's
read to the matcher or ask which plates are listed, the older shared identity (no service named) none of these."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

from services.access import identity
from tests.access.conftest import Access
from tests.integration.conftest import System

A, B = "MN0271200", "MN0279999"


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_access_names_the_calling_service_in_its_token(access: Access) -> None:
    async with access.app.state.sessionmaker() as session:
        ingest, ingest_secret = await identity.create_client(session, name="service:ingest", role="service")
        shared, shared_secret = await identity.create_client(session, name="internal services", role="service")
        await session.commit()
    token = await access.client_token(ingest.client_id, ingest_secret)
    assert _claims(token)["service"] == "ingest"
    legacy = await access.client_token(shared.client_id, shared_secret)
    assert "service" not in _claims(legacy)


async def test_only_hotlists_key_files_hits_or_asks_which_reads_are_held(system: System) -> None:
    read_id = str(uuid.uuid4())
    hit = {"hit_id": str(uuid.uuid4()), "read_id": read_id, "list": "stolen", "entry_id": "e-1", "read_plate": "ABC123"}
    for who in ({"subject": "svc-ingest"}, {"subject": "svc-stolen", "service": None}):
        headers = system.auth("service", **who)
        filed = await system.ingest.post("/v1/internal/hits", json={"hits": [hit]}, headers=headers)
        assert filed.status_code == 403 and "hotlist" in filed.json()["detail"], (who, filed.text)
        held = await system.ingest.post("/v1/internal/reads/held", json={"read_ids": [read_id]}, headers=headers)
        assert held.status_code == 403 and "hotlist" in held.json()["detail"], (who, held.text)
    hotlist = system.auth("service", subject="svc-hotlist")
    filed = await system.ingest.post("/v1/internal/hits", json={"hits": [hit]}, headers=hotlist)
    assert filed.status_code == 200 and filed.json()["unknown_reads"] == [read_id], filed.text
    held = await system.ingest.post("/v1/internal/reads/held", json={"read_ids": [read_id]}, headers=hotlist)
    assert held.status_code == 200 and held.json()["held"] == [], held.text


async def test_only_ingests_key_states_a_reads_agency_to_the_matcher(system: System) -> None:
    plate = f"SK{uuid.uuid4().int % 100000:05d}"
    sup_b = system.auth("supervisor", agency=B, subject="sup-b-keys")
    until = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    listing = {"name": f"covert-{plate.lower()}", "owner": "B narcotics", "covert": True, "case_number": "24-000126"}
    made = await system.hotlist.post("/v1/lists", json={**listing, "expires_at": until}, headers=sup_b)
    assert made.status_code == 201, made.text
    entry = {"plate": plate, "reason": "covert surveillance", "case_number": "24-000126", "owner": "B"}
    added = await system.hotlist.post(
        f"/v1/lists/{made.json()['name']}/entries", json={**entry, "expires_at": until}, headers=sup_b
    )
    assert added.status_code in (200, 201), added.text
    read = {"plate": plate, "captured_at": datetime.now(UTC).isoformat(), "agency": B}
    for who in ({"subject": "svc-hotlist"}, {"subject": "svc-stolen", "service": None}):
        probe = await system.hotlist.post(
            "/v1/match", json={**read, "read_id": f"p-{uuid.uuid4().hex[:6]}"}, headers=system.auth("service", **who)
        )
        assert probe.status_code == 200 and probe.json()["hits"] == [], (who, probe.text)
        listed = await system.hotlist.post(
            "/v1/internal/plates/listed", json={"plate": plate, "agency": B}, headers=system.auth("service", **who)
        )
        assert listed.status_code == 403, (who, listed.text)
    ingest = system.auth("service", subject="svc-ingest")
    found = await system.hotlist.post(
        "/v1/match", json={**read, "read_id": f"i-{uuid.uuid4().hex[:6]}"}, headers=ingest
    )
    assert found.status_code == 200 and len(found.json()["hits"]) == 1, found.text
    listed = await system.hotlist.post("/v1/internal/plates/listed", json={"plate": plate, "agency": B}, headers=ingest)
    assert listed.status_code == 200 and listed.json()["listed"] is True, listed.text


async def test_only_access_reads_the_figures_of_its_reports(system: System) -> None:
    day = {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00", "agency": A}
    for who in ("svc-ingest", "svc-hotlist"):
        headers = system.auth("service", subject=who)
        usage = await system.ingest.get("/v1/internal/usage", params=day, headers=headers)
        assert usage.status_code == 403 and "access" in usage.json()["detail"], (who, usage.text)
        report = await system.hotlist.get("/v1/internal/report", params=day, headers=headers)
        assert report.status_code == 403, (who, report.text)
    access = system.auth("service", subject="service:access")
    assert (await system.ingest.get("/v1/internal/usage", params=day, headers=access)).status_code == 200
    assert (await system.hotlist.get("/v1/internal/report", params=day, headers=access)).status_code == 200

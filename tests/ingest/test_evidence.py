"""Evidence export: a held read's package (photo, crop, record and holds, hits with dispositions, audit entries)
as a zip with a SHA-256 manifest, under a grant for the hold's case, recorded as a disclosure; a read not held is
refused."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import AGENCY, image_bytes, ingest_settings
from tests.support.apps import running

OTHER_AGENCY = "MN0270200"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _grant(conn, case: str, holder: str, agency: str = AGENCY, from_days_ago: float = 1) -> uuid.UUID:  # type: ignore[no-untyped-def]
    rid, vid, did, gid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    p = {"r": rid, "v": vid, "d": did, "g": gid, "c": case, "h": holder, "a": agency, "now": now}
    p["start"] = now - timedelta(days=from_days_ago)
    p["exp"] = now + timedelta(days=7)
    await conn.execute(
        text(
            "INSERT INTO access.requests (id, requester, requester_roles, requester_agency, status, current_version, "
            "filed_at, updated_at) VALUES (:r, :h, ARRAY['officer'], :a, 'approved', 1, :now, :now)"
        ),
        p,
    )
    await conn.execute(
        text(
            "INSERT INTO access.request_versions (id, request_id, version, case_number, reason, suspicion_basis, "
            'legal_basis, plates, misread_tolerant, start, "end", filed_by, filed_at) VALUES (:v, :r, 1, :c, '
            "'robbery', 'witness', 'investigation', ARRAY['EVD101'], true, :now, :exp, :h, :now)"
        ),
        p,
    )
    await conn.execute(
        text(
            "INSERT INTO access.decisions (id, request_id, version, decision, reason, decided_by, decided_at) "
            "VALUES (:d, :r, 1, 'approve', 'fits the case', 'sup-ev', :now)"
        ),
        p,
    )
    await conn.execute(
        text(
            "INSERT INTO access.grants (id, request_id, version, decision_id, holder, data_agency, case_number, "
            'plates, misread_tolerant, start, "end", created_at, expires_at) VALUES (:g, :r, 1, :d, :h, :a, :c, '
            "ARRAY['EVD101'], true, :start, :exp, :now, :exp)"
        ),
        p,
    )
    return gid


async def test_evidence_package_of_a_held_read(settings: Settings, officer_factory, make_token: TokenFactory) -> None:  # type: ignore[no-untyped-def]
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest) as ingest_client, running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            officer = officer_factory(ingest_client)()
            assert (await officer.start()).status_code == 201
            posted = await officer.post_read(
                officer.meta(plate="EVD 101"), image_bytes(noise=20), image_bytes("PNG", (120, 40))
            )
            assert posted.status_code == 200, posted.text
            read_id = posted.json()["read_id"]
            other = (await officer.post_read(officer.meta(plate="EVD 102"))).json()["read_id"]
            case = f"CR-EV-{uuid.uuid4().hex[:6]}"
            sup = _auth(make_token(subject="sup-ev", roles=["supervisor"], agency=AGENCY))
            hold = await ingest_client.post(
                "/v1/holds", json={"case_number": case, "reason": "robbery suspect vehicle", "read_ids": [read_id]},
                headers=sup,
            )  # fmt: skip
            assert hold.status_code == 201, hold.text
            hit_id = uuid.uuid4()
            async with ingest.state.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, "
                        "concerns, match, read_plate, entry_plate, state_check, covert, priority, past_read, unit, "
                        "captured_at, created_at, custodian) VALUES (:id, :r, 'V9', 'bca', 'stolen_vehicle', "
                        "'Stolen vehicle', 'vehicle', 'exact', 'EVD101', 'EVD101', 'match', false, 0, false, :u, "
                        "now(), now(), :a)"
                    ),
                    {"id": hit_id, "r": read_id, "u": officer.unit, "a": AGENCY},
                )
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hit_dispositions (id, hit_id, valid, action, by, at) "
                        "VALUES (:id, :h, true, 'arrest', 'officer-ev', now())"
                    ),
                    {"id": uuid.uuid4(), "h": hit_id},
                )
                grant_id = await _grant(conn, case, "det-ev")
            detective = _auth(make_token(subject="det-ev", roles=["officer"], agency=AGENCY))
            body = {
                "grant_id": str(grant_id),
                "read_id": read_id,
                "recipient_name": "Hennepin County Attorney",
                "legal_basis": "agency_request",
                "purpose": "prosecution of the robbery case",
            }
            resp = await client.post("/v1/evidence", json=body, headers=detective)
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"] == "application/zip"
            z = zipfile.ZipFile(io.BytesIO(resp.content))
            manifest = json.loads(z.read("manifest.json"))
            assert set(manifest["files"]) == {"photo.jpg", "crop.png", "read.json", "hits.json", "audit.json"}
            # 13.824 subd. 4(b): the recipient is told the classification and that the statute binds it.
            assert "13.824 applies to the recipient" in manifest["recipient_notice"]["statute"]
            assert manifest["recipient_notice"]["classification"].startswith("private data")
            for name, digest in manifest["files"].items():
                assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
            assert z.read("photo.jpg")[:2] == b"\xff\xd8"
            record = json.loads(z.read("read.json"))
            assert record["read"]["plate"] == "EVD101" and record["holds"][0]["case_number"] == case
            (hit,) = json.loads(z.read("hits.json"))
            assert hit["category"] == "stolen_vehicle" and hit["dispositions"][0]["action"] == "arrest"
            assert any(e["action"] == "hold.place" for e in json.loads(z.read("audit.json")))
            # Recorded as a disclosure, with its audit entry.
            listed = await client.get("/v1/disclosures", headers=sup)
            mine = [d for d in listed.json() if d["id"] == manifest["disclosure_id"]]
            assert mine and mine[0]["record_count"] == 1 and mine[0]["recipient_name"].startswith("Hennepin")
            entries = await client.get(
                "/v1/audit",
                params={"action": "disclosure", "since": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()},
                headers=_auth(make_token(subject="aud-ev", roles=["auditor"], agency=AGENCY)),
            )
            assert any(read_id in e["object_ids"] for e in entries.json()["entries"])

            # A read not held is not exported; nor under a grant for another case; nor by someone else.
            assert (
                await client.post("/v1/evidence", json={**body, "read_id": other}, headers=detective)
            ).status_code == 409
            # Held for the case, but outside the grant's plates (EVD101 only) or dates: the grant does not cover it.
            held_other = await ingest_client.post(
                "/v1/holds", json={"case_number": case, "reason": "second vehicle", "read_ids": [other]}, headers=sup
            )
            assert held_other.status_code == 201, held_other.text
            outside = await client.post("/v1/evidence", json={**body, "read_id": other}, headers=detective)
            assert outside.status_code == 403 and "outside the grant's plates" in outside.json()["detail"]
            async with ingest.state.engine.begin() as conn:
                later = await _grant(conn, case, "det-ev", from_days_ago=-0.01)  # opens after the read was taken
            too_late = await client.post("/v1/evidence", json={**body, "grant_id": str(later)}, headers=detective)
            assert too_late.status_code == 403 and "outside the grant's dates" in too_late.json()["detail"]
            async with ingest.state.engine.begin() as conn:
                wrong_case = await _grant(conn, "CR-OTHER", "det-ev")
            elsewhere = await client.post("/v1/evidence", json={**body, "grant_id": str(wrong_case)}, headers=detective)
            assert elsewhere.status_code == 403
            stranger = _auth(make_token(subject="det-other", roles=["officer"], agency=AGENCY))
            assert (await client.post("/v1/evidence", json=body, headers=stranger)).status_code == 403
            # Another agency: its grant for the same case number opens its own reads, never this agency's held read.
            async with ingest.state.engine.begin() as conn:
                theirs = await _grant(conn, case, "det-b", agency=OTHER_AGENCY)
            outsider = _auth(make_token(subject="det-b", roles=["officer"], agency=OTHER_AGENCY))
            crossed = await client.post("/v1/evidence", json={**body, "grant_id": str(theirs)}, headers=outsider)
            assert crossed.status_code == 404, crossed.text
            assert (await client.post("/v1/evidence", json=body, headers=outsider)).status_code == 403
            await ingest_client.post(
                f"/v1/holds/{hold.json()['hold_id']}/release", json={"reason": "test done"}, headers=sup
            )

"""A quarantined camera-agent post opens in full only under a grant that covers it (its agency, every plate it names,
its capture time), for the grant's holder, audited with the grant; the listing stays redacted; an admin deletes a
post unread, audited; agency B reaches none of agency A's posts by either door."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import drain, post, register, results_body, rows
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

# Agencies of this test only: other tests count the quarantine views of the usual two.
A, B = (f"MN{uuid.uuid4().int % 10**7:07d}" for _ in range(2))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _grant(
    access: Any,
    holder: str,
    agency: str,
    plates: list[str],
    start: datetime,
    area: tuple[float, float, float] | None = None,
) -> str:
    """An approved request's grant, as a supervisor's approval leaves it (tests/access covers the approval)."""
    rid, vid, did, gid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    p = {"r": rid, "v": vid, "d": did, "g": gid, "c": f"QG-{uuid.uuid4().hex[:6]}", "h": holder, "a": agency,
         "now": now, "start": start, "exp": now + timedelta(days=7), "plates": plates}  # fmt: skip
    p["lat"], p["lon"], p["rad"] = area or (None, None, None)
    async with access.state.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO access.requests (id, requester, requester_roles, requester_agency, status, "
                "current_version, filed_at, updated_at) VALUES (:r, :h, ARRAY['officer'], :a, 'approved', 1, :now, "
                ":now)"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO access.request_versions (id, request_id, version, case_number, reason, suspicion_basis, "
                'legal_basis, plates, misread_tolerant, start, "end", filed_by, filed_at) VALUES (:v, :r, 1, :c, '
                "'robbery', 'witness', 'investigation', :plates, false, :start, :exp, :h, :now)"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO access.decisions (id, request_id, version, decision, reason, decided_by, decided_at) "
                "VALUES (:d, :r, 1, 'approve', 'fits the case', 'sup-q', :now)"
            ),
            p,
        )
        await conn.execute(
            text(
                "INSERT INTO access.grants (id, request_id, version, decision_id, holder, data_agency, case_number, "
                'plates, misread_tolerant, start, "end", created_at, expires_at, area_lat, area_lon, area_radius_m) '
                "VALUES (:g, :r, 1, :d, :h, :a, :c, :plates, false, :start, :exp, :now, :exp, :lat, :lon, :rad)"
            ),
            p,
        )
    return str(gid)


async def test_a_quarantined_post_opens_in_full_only_under_a_covering_grant(
    settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    own = ingest_settings(settings, data_dir=tmp_path)
    ingest = ingest_app(own, run_worker=False)
    async with running(ingest) as ing:
        access = access_app(settings, ingest_transport=httpx.ASGITransport(app=ingest))
        async with running(access) as acc:
            admin = {x: _auth(make_token(subject=f"admin-{x}", roles=["admin"], agency=x)) for x in (A, B)}
            holder = f"officer-q-{uuid.uuid4().hex[:6]}"
            officer_a = _auth(make_token(subject=holder, roles=["officer"], agency=A, badge="7001"))
            officer_b = _auth(make_token(subject=f"officer-qb-{uuid.uuid4().hex[:6]}", roles=["officer"], agency=B,
                                         badge="7002"))  # fmt: skip

            # Each agency's fixed reader posts a read captured before it was placed: quarantined, plate and all.
            placed = datetime.now(UTC) - timedelta(days=2)
            captured = placed - timedelta(days=3)
            at_ms = int(captured.timestamp() * 1000)
            tag = uuid.uuid4().hex[:3].upper()
            plate_a, plate_a2, plate_b = f"QA{tag}1", f"QA{tag}2", f"QB{tag}1"
            agents = {}
            for agency in (A, B):
                agents[agency] = await register(
                    ing, admin[agency]["Authorization"].split()[1], name=f"pole-{uuid.uuid4().hex[:6]}",
                    placed_on=placed.date().isoformat(),
                )  # fmt: skip
            for agency, plate, ms in ((A, plate_a, at_ms), (A, plate_a2, at_ms + 1000), (B, plate_b, at_ms)):
                assert (await post(ing, agents[agency]["token"], results_body(plate, ms))).status_code == 200
            await drain(ingest)
            ids = {}
            for agency in (A, B):
                listed = await ing.get(
                    "/v1/agents/quarantine",
                    params={"reason": "why did the pole's reads go missing", "agent_id": agents[agency]["agent_id"]},
                    headers=admin[agency],
                )
                assert listed.status_code == 200, listed.text
                for p in listed.json()["posts"]:
                    assert plate_a not in p["body"] and plate_b not in p["body"]  # the listing stays redacted
                    ids[p["id"]] = agency
            by_plate = {
                r.plates[0]: str(r.id)
                for r in await rows(
                    own,
                    "SELECT id, plates FROM ingest.agent_quarantine WHERE id = ANY(:ids)",
                    ids=[uuid.UUID(i) for i in ids],
                )  # fmt: skip
            }
            post_a, post_a2, post_b = by_plate[plate_a], by_plate[plate_a2], by_plate[plate_b]

            since = captured - timedelta(days=1)
            covering = await _grant(access, holder, A, [plate_a, plate_a2], since)

            async def open_(grant: str, post_id: str, who: dict[str, str] = officer_a) -> httpx.Response:
                return await acc.post("/v1/quarantine/open", json={"grant_id": grant, "post_id": post_id}, headers=who)

            # No grant of one's own: 403 (another's grant), 404 (none); an admin has no door here at all.
            refused = await open_(covering, post_a, officer_b)
            assert refused.status_code == 403 and "someone else" in refused.json()["detail"], refused.text
            assert (await open_(str(uuid.uuid4()), post_a)).status_code == 404
            assert (await open_(covering, post_a, admin[A])).status_code == 403
            # A grant of agency A does not open agency B's post, even naming its plate and dates.
            a_naming_b = await _grant(access, holder, A, [plate_b], since)
            other = await open_(a_naming_b, post_b)
            assert other.status_code == 404 and plate_b not in other.text, other.text
            # A grant of A that does not cover the post's plate, or its capture time: 403 with the reason.
            wrong_plate = await open_(await _grant(access, holder, A, ["ZZZ999"], since), post_a)
            assert wrong_plate.status_code == 403 and "plate" in wrong_plate.json()["detail"], wrong_plate.text
            assert plate_a not in wrong_plate.text
            too_late = await open_(await _grant(access, holder, A, [plate_a], placed), post_a)
            assert too_late.status_code == 403 and "outside the grant's dates" in too_late.json()["detail"]
            # A grant with an area: the post says no position (no GPS), so no area covers it.
            in_area = await open_(await _grant(access, holder, A, [plate_a], since, (45.03, -93.36, 500.0)), post_a)
            assert in_area.status_code == 403 and "area" in in_area.json()["detail"], in_area.text

            # The covering grant: the full post, with the recipient's notice, audited with the grant and case.
            opened = await open_(covering, post_a)
            assert opened.status_code == 200, opened.text
            full = opened.json()
            assert full["plates"] == [plate_a] and plate_a in full["body"] and full["grant_id"] == covering
            assert "13.824" in full["recipient_notice"]["statute"]
            audit = await rows(
                own,
                "SELECT actor, agency, grant_id, case_number, outcome FROM audit.audit_log "
                "WHERE action = 'agents.quarantine.open' AND :p = ANY(object_ids) ORDER BY seq",
                p=post_a,
            )
            assert [(r.actor, r.grant_id, r.outcome) for r in audit][-1] == (holder, covering, "ok")
            assert any(r.outcome == "denied" for r in audit)  # the refusals are in the trail too
            assert all(r.agency == A for r in audit if r.actor == holder)

            # Deleted unread: not by B's admin (404), by A's admin with a reason (audited); then it opens for no one.
            path = f"/v1/agents/quarantine/{post_a2}"
            reason = {"reason": "a test post from the installer, nothing to read"}
            assert (await ing.delete(path, params=reason, headers=admin[B])).status_code == 404
            assert (await ing.delete(path, headers=admin[A])).status_code == 422  # no reason
            assert (await ing.delete(path, params=reason, headers=admin[A])).status_code == 204
            gone = await rows(
                own,
                "SELECT agency, details FROM audit.audit_log WHERE action = 'agents.quarantine.delete' "
                "AND :p = ANY(object_ids)",
                p=post_a2,
            )
            assert [(r.agency, r.details["reason"]) for r in gone] == [(A, reason["reason"])]
            assert (await open_(covering, post_a2)).status_code == 404
            assert (await ing.delete(path, params=reason, headers=admin[A])).status_code == 404

"""BCA notices (Minn. Stat. 13.824 subd. 8) through the HTTP API of the real ingest and access apps: the register of
readers (units from shifts, agents from their activity) and of fixed locations; notices due within 10 days of a first
use or a location change, recorded as sent, flagged overdue, against dates computed here; a move making a new notice
due; fixed readers with their locations and active intervals in the log of use."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

AGENCY = "MN0271200"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


async def test_bca_notices_register_due_sent_overdue(settings: Settings, make_token: TokenFactory) -> None:
    today = datetime.now(UTC).date()
    tag = uuid.uuid4().hex[:6].upper()
    u_old, u_new = f"BCA-{tag}-1", f"BCA-{tag}-2"
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest) as ing, running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            admin = make_token(subject="adm-bca", roles=["admin"], agency=AGENCY)
            supervisor = make_token(subject="sup-bca", roles=["supervisor"], agency=AGENCY)
            auditor = make_token(subject="aud-bca", roles=["auditor"], agency=AGENCY)
            fixed_placed = today - timedelta(days=30)
            resp = await ing.post(
                "/v1/agents",
                json={
                    "name": f"fixed-{tag}",
                    "kind": "fixed",
                    "lat": 45.03,
                    "lon": -93.36,
                    "placed_on": fixed_placed.isoformat(),
                },
                headers=_auth(admin),
            )
            assert resp.status_code == 201, resp.text
            fixed_id = resp.json()["agent_id"]
            resp = await ing.post(
                "/v1/agents", json={"name": f"mounted-{tag}", "kind": "unit", "unit": u_new}, headers=_auth(admin)
            )
            assert resp.status_code == 201, resp.text
            mounted_id = resp.json()["agent_id"]
            # Units in use from their first shift; the fixed reader from its first activity (25 and 24 days ago).
            first_old, first_new = today - timedelta(days=20), today - timedelta(days=3)
            fixed_first = today - timedelta(days=25)
            next_day = fixed_first + timedelta(days=1)
            spans = [(_at(fixed_first, 6), _at(fixed_first, 18)), (_at(next_day, 7), _at(next_day, 12))]
            async with ingest.state.engine.begin() as conn:
                for unit, day in ((u_old, first_old), (u_old, first_old + timedelta(days=2)), (u_new, first_new)):
                    s = _at(day, 8)
                    await conn.execute(
                        text(
                            "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, "
                            "expires_at, ended_at, end_reason) VALUES (:id, :u, :ag, 'B-1', 'officer-x', "
                            "ARRAY['front'], :s, :e, :e, 'logout')"
                        ),
                        {"id": uuid.uuid4(), "u": unit, "ag": AGENCY, "s": s, "e": s + timedelta(hours=8)},
                    )
                for s, e in spans:
                    await conn.execute(
                        text("INSERT INTO ingest.agent_activity (agent_id, started_at, ended_at) VALUES (:a, :s, :e)"),
                        {"a": fixed_id, "s": s, "e": e},
                    )

            async def report(**params: Any) -> dict[str, Any]:
                resp = await client.get("/v1/reports/bca-notices", params=params, headers=_auth(auditor))
                assert resp.status_code == 200, resp.text
                data: dict[str, Any] = resp.json()
                return data

            def ours(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
                mine = {f"unit:{AGENCY}:{u_old}", f"unit:{AGENCY}:{u_new}", f"agent:{fixed_id}", f"agent:{mounted_id}"}
                return {i["key"]: i for i in data["items"] if i["reader_id"] in mine}

            data = await report()
            readers = {r["reader_id"]: r for r in data["reader_register"]["readers"]}
            assert datetime.fromisoformat(readers[f"unit:{AGENCY}:{u_old}"]["first_use"]) == _at(first_old, 8)
            assert datetime.fromisoformat(readers[f"agent:{fixed_id}"]["first_use"]) == spans[0][0]
            assert readers[f"agent:{fixed_id}"]["kind"] == "fixed"
            assert readers[f"agent:{mounted_id}"]["first_use"] is None  # registered, never collected: no notice
            items = ours(data)
            k_old, k_new = f"first_use:unit:{AGENCY}:{u_old}", f"first_use:unit:{AGENCY}:{u_new}"
            k_fixed = f"first_use:agent:{fixed_id}"
            assert set(items) == {k_old, k_new, k_fixed}
            assert items[k_old]["due_by"] == (first_old + timedelta(days=10)).isoformat()
            assert items[k_old]["status"] == "overdue" and items[k_old]["overdue"] is True
            assert items[k_new]["status"] == "due" and items[k_new]["days_left"] == 7
            assert items[k_fixed]["status"] == "overdue"
            # Judged as of a later day, the recent unit is overdue too.
            later = ours(await report(as_of=(first_new + timedelta(days=11)).isoformat()))
            assert later[k_new]["status"] == "overdue"
            assert ours(await report(as_of=(first_new + timedelta(days=10)).isoformat()))[k_new]["status"] == "due"

            # Notices sent: the fixed reader's on time, the old unit's late; bad ones refused.
            bad = await client.post(
                "/v1/reports/bca-notices",
                json={"sent_on": today.isoformat(), "recipient": "BCA", "method": "e-mail", "items": ["nope"]},
                headers=_auth(supervisor),
            )
            assert bad.status_code == 422 and "nope" in bad.json()["detail"]
            future = (today + timedelta(days=1)).isoformat()
            bad = await client.post(
                "/v1/reports/bca-notices",
                json={"sent_on": future, "recipient": "BCA", "method": "e-mail", "items": [k_old]},
                headers=_auth(supervisor),
            )
            assert bad.status_code == 422
            denied = await client.post(
                "/v1/reports/bca-notices",
                json={"sent_on": today.isoformat(), "recipient": "BCA", "method": "e-mail", "items": [k_old]},
                headers=_auth(auditor),
            )
            assert denied.status_code == 403
            sent: dict[str, str] = {}
            for key, on in ((k_fixed, fixed_first + timedelta(days=2)), (k_old, today - timedelta(days=1))):
                resp = await client.post(
                    "/v1/reports/bca-notices",
                    json={"sent_on": on.isoformat(), "recipient": "BCA ALPR desk", "method": "e-mail", "items": [key]},
                    headers=_auth(supervisor),
                )
                assert resp.status_code == 201, resp.text
                assert resp.json()["readers"] == [items[key]["reader_id"]]
                sent[key] = resp.json()["notice_id"]
            items = ours(await report())
            assert items[k_fixed]["status"] == "sent" and items[k_fixed]["sent_late"] is False
            assert items[k_fixed]["notice_id"] == sent[k_fixed]
            assert items[k_old]["status"] == "sent" and items[k_old]["sent_late"] is True
            assert items[k_new]["status"] == "due"

            # Moving the fixed reader keeps the old location and makes a new notice due within 10 days.
            moved_on = today - timedelta(days=2)
            resp = await ing.post(
                f"/v1/agents/{mounted_id}/location",
                json={"lat": 45.0, "lon": -93.0, "placed_on": moved_on.isoformat()},
                headers=_auth(admin),
            )
            assert resp.status_code == 422  # a mounted reader goes with its unit
            resp = await ing.post(
                f"/v1/agents/{fixed_id}/location",
                json={"lat": 45.0, "lon": -93.0, "placed_on": fixed_placed.isoformat()},
                headers=_auth(admin),
            )
            assert resp.status_code == 422  # not after the current location
            resp = await ing.post(
                f"/v1/agents/{fixed_id}/location",
                json={"lat": 45.05, "lon": -93.31, "placed_on": moved_on.isoformat(), "description": "moved north"},
                headers=_auth(admin),
            )
            assert resp.status_code == 200, resp.text
            history = [(x["lat"], x["placed_on"], x["until"], x["change"]) for x in resp.json()]
            assert history == [
                (45.03, fixed_placed.isoformat(), moved_on.isoformat(), False),
                (45.05, moved_on.isoformat(), None, True),
            ]
            data = await report()
            locs = [x for x in data["reader_register"]["fixed_locations"] if x["agent_id"] == fixed_id]
            assert [x["placed_on"] for x in locs] == [fixed_placed.isoformat(), moved_on.isoformat()]
            items = ours(data)
            k_move = f"location:agent:{fixed_id}:{moved_on.isoformat()}"
            assert items[k_move]["status"] == "due" and items[k_move]["days_left"] == 8
            assert items[k_move]["event"] == "location_change" and items[k_move]["lat"] == 45.05
            assert items[k_fixed]["status"] == "sent"  # the first-use notice still covers the first use

            # The fixed reader in the log of use: both locations in force in the period, its active intervals.
            start = _at(fixed_first - timedelta(days=1), 0)
            end = _at(today + timedelta(days=1), 0)
            resp = await client.get(
                "/v1/reports/log-of-use",
                params={"start": start.isoformat(), "end": end.isoformat()},
                headers=_auth(supervisor),
            )
            assert resp.status_code == 200, resp.text
            fixed = [r for r in resp.json()["fixed_readers"] if r["agent_id"] == fixed_id]
            assert len(fixed) == 1
            assert [loc["placed_on"] for loc in fixed[0]["locations"]] == [
                fixed_placed.isoformat(),
                moved_on.isoformat(),
            ]
            got = [
                (datetime.fromisoformat(i["start"]), datetime.fromisoformat(i["end"]))
                for i in fixed[0]["active_intervals"]
            ]
            assert got == spans
            assert fixed[0]["active_hours"] == 17.0
            # A period after the move shows only the new location; one before any activity shows no interval.
            resp = await client.get(
                "/v1/public/log-of-use",
                params={
                    "start": _at(today - timedelta(days=1), 0).isoformat(),
                    "end": end.isoformat(),
                    "agency": AGENCY,
                },
            )
            fixed = [r for r in resp.json()["fixed_readers"] if r["agent_id"] == fixed_id]
            assert [loc["lat"] for loc in fixed[0]["locations"]] == [45.05] and fixed[0]["active_intervals"] == []

            async with ingest.state.engine.connect() as conn:
                actions = (
                    await conn.execute(
                        text(
                            "SELECT action, count(*) FROM audit.audit_log WHERE action IN "
                            "('report.bca_notices', 'report.bca_notice_sent', 'agent.move') "
                            "AND actor IN ('aud-bca', 'sup-bca', 'adm-bca') GROUP BY 1"
                        )
                    )
                ).all()
            counts = dict(actions)
            assert counts["report.bca_notice_sent"] == 2 and counts["agent.move"] == 1
            assert counts["report.bca_notices"] >= 5


async def test_two_agencies_units_of_one_name_are_two_readers_with_their_own_notices(
    settings: Settings, make_token: TokenFactory
) -> None:
    """Subd. 8 per agency: agency A's CAR-x and agency B's CAR-x each have their first use and their notice; A's
    notice does not cover B's unit, and B's first use is its own (not A's older one, which would look overdue)."""
    today = datetime.now(UTC).date()
    unit, other = f"CAR-{uuid.uuid4().hex[:6].upper()}", "MN0270900"
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            firsts = {AGENCY: today - timedelta(days=20), other: today - timedelta(days=2)}
            async with ingest.state.engine.begin() as conn:
                for agency, day in firsts.items():
                    s = _at(day, 8)
                    await conn.execute(
                        text(
                            "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, "
                            "expires_at, ended_at, end_reason) VALUES (:id, :u, :ag, 'B-1', 'officer-x', "
                            "ARRAY['front'], :s, :e, :e, 'logout')"
                        ),
                        {"id": uuid.uuid4(), "u": unit, "ag": agency, "s": s, "e": s + timedelta(hours=8)},
                    )

            async def item(agency: str) -> dict[str, Any]:
                auditor = make_token(subject=f"aud-{agency}", roles=["auditor"], agency=agency)
                resp = await client.get("/v1/reports/bca-notices", headers=_auth(auditor))
                assert resp.status_code == 200, resp.text
                [found] = [i for i in resp.json()["items"] if i["reader"] == unit]
                return found

            a, b = await item(AGENCY), await item(other)
            assert a["key"] != b["key"]
            assert a["on"] == firsts[AGENCY].isoformat() and a["status"] == "overdue"
            assert b["on"] == firsts[other].isoformat() and b["status"] == "due"  # its own first use, not A's
            sup_a = make_token(subject="sup-a", roles=["supervisor"], agency=AGENCY)
            sent = await client.post(
                "/v1/reports/bca-notices",
                json={"sent_on": today.isoformat(), "recipient": "BCA", "method": "e-mail", "items": [a["key"]]},
                headers=_auth(sup_a),
            )
            assert sent.status_code == 201, sent.text
            assert (await item(AGENCY))["status"] == "sent"
            assert (await item(other))["status"] == "due"  # A's notice is not B's
            # A cannot record a notice for B's unit.
            cross = await client.post(
                "/v1/reports/bca-notices",
                json={"sent_on": today.isoformat(), "recipient": "BCA", "method": "e-mail", "items": [b["key"]]},
                headers=_auth(sup_a),
            )
            assert cross.status_code == 422

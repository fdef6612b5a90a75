"""Agency lists: required case number, reason, owner and expiry; expiry stops matching; every change audited;
priority and covert hits; past-read matching against ingest's read lookup (a small app serving that contract)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.support.apps import running

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-7"}


def _entry(plate: str, **over: object) -> dict[str, object]:
    return {
        "plate": plate,
        "state": "MN",
        "case_number": "CR-2026-0101",
        "reason": "vehicle used in burglary series",
        "owner": "det. 4411",
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        **over,
    }


async def test_agency_entries_need_case_reason_owner_expiry_and_expire(hl_settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    sup = tokens("supervisor", agency="MN0271200")
    async with running(create_app(hl_settings)) as client:
        made = await client.post(
            "/v1/lists", headers=sup, json={"name": "burglary-2026", "owner": "MN0271200", "priority": 5}
        )
        assert made.status_code == 201, made.text
        assert (
            await client.post("/v1/lists", headers=sup, json={"name": "burglary-2026", "owner": "x"})
        ).status_code == 409
        assert (
            await client.post("/v1/lists", headers=tokens("officer"), json={"name": "x", "owner": "x"})
        ).status_code == 403

        for missing in ("case_number", "reason", "owner", "expires_at"):
            body = _entry("AG1001")
            del body[missing]
            resp = await client.post("/v1/lists/burglary-2026/entries", headers=sup, json=body)
            assert resp.status_code == 422 and missing in str(resp.json()["detail"])
        past = await client.post(
            "/v1/lists/burglary-2026/entries", headers=sup, json=_entry("AG1001", expires_at="2020-01-01T00:00:00Z")
        )
        assert past.status_code == 422 and "future" in past.json()["detail"]

        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        added = await client.post(
            "/v1/lists/burglary-2026/entries", headers=sup, json=_entry("AG1001", expires_at=soon.isoformat())
        )
        assert added.status_code == 201, added.text
        assert added.json()["past_read"] == "not_configured"
        kept = await client.post("/v1/lists/burglary-2026/entries", headers=sup, json=_entry("AG2002", state=None))
        entry_id = kept.json()["id"]

        hit = (
            await client.post(
                "/v1/match", headers=tokens("service"), json={"read_id": "r-ag1", "plate": "AG1OO1", **READ}
            )
        ).json()
        (h,) = hit["hits"]
        assert (h["list"], h["match"], h["priority"], h["category"]) == ("burglary-2026", "misread", 5, "investigation")
        assert h["list_version"] is None and h["covert"] is False

        # Expired: stops matching (no event to wait for: the clock passes the expiry).
        await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
        assert (
            await client.post(
                "/v1/match", headers=tokens("service"), json={"read_id": "r-ag2", "plate": "AG1001", **READ}
            )
        ).json()["hits"] == []
        listed = (await client.get("/v1/lists/burglary-2026/entries", headers=sup)).json()
        assert [e["active"] for e in listed] == [False, True]

        removed = await client.delete(f"/v1/lists/burglary-2026/entries/{entry_id}", headers=sup)
        assert removed.status_code == 200 and removed.json()["active"] is False
        assert (await client.delete(f"/v1/lists/burglary-2026/entries/{entry_id}", headers=sup)).status_code == 409
        assert (
            await client.post(
                "/v1/match", headers=tokens("service"), json={"read_id": "r-ag3", "plate": "AG2002", **READ}
            )
        ).json()["hits"] == []

    engine = create_async_engine(hl_settings.database_url or "")
    try:
        async with engine.connect() as conn:
            actions = (
                (
                    await conn.execute(
                        text(
                            "SELECT action FROM audit.audit_log WHERE service = 'hotlist' AND action LIKE 'hotlist.%' "
                            "AND (object_ids && ARRAY['burglary-2026', :e] OR details->>'list' = 'burglary-2026') "
                            "ORDER BY seq"
                        ),
                        {"e": entry_id},
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    # Reading a list's entries is audited too (tests/security: another agency's list is not found).
    assert [a for a in actions if a != "hotlist.entries.view"] == [
        "hotlist.list.create", "hotlist.entry.add", "hotlist.entry.add", "hotlist.entry.remove"
    ]  # fmt: skip


async def test_cars_get_the_agency_lists_live_entries_but_never_a_covert_list(hl_settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    sup, car = tokens("supervisor", agency="MN0271200"), tokens("officer", agency="MN0271200", badge="77")
    tag = datetime.now(UTC).strftime("%H%M%S%f")
    async with running(create_app(hl_settings)) as client:
        for name, covert in ((f"open-{tag}", False), (f"covert-{tag}", True)):
            made = await client.post(
                "/v1/lists",
                headers=sup,
                json={"name": name, "owner": "MN0271200", "priority": 3, "covert": covert, **_case(covert)},
            )
            assert made.status_code == 201, made.text
        added = {}
        for name, plate in ((f"open-{tag}", "CAR101"), (f"open-{tag}", "CAR102"), (f"covert-{tag}", "CAR103")):
            resp = await client.post(f"/v1/lists/{name}/entries", headers=sup, json=_entry(plate))
            assert resp.status_code == 201, resp.text
            added[plate] = resp.json()["id"]

        full = await client.get("/v1/hotlist/agency-entries", headers=car)
        assert full.status_code == 200, full.text
        mine = {e["plate"]: e for e in full.json()["entries"] if e["list"].endswith(tag)}
        assert set(mine) == {"CAR101", "CAR102"}  # the covert list's entry never reaches a car
        assert mine["CAR101"]["reason"] == "vehicle used in burglary series" and mine["CAR101"]["live"] is True
        assert "case_number" not in mine["CAR101"] and "owner" not in mine["CAR101"]

        # The changes since: a removed entry comes back once, as not live.
        since = full.json()["as_of"]
        assert (await client.delete(f"/v1/lists/open-{tag}/entries/{added['CAR102']}", headers=sup)).status_code == 200
        changes = await client.get("/v1/hotlist/agency-entries", params={"changed_since": since}, headers=car)
        # Changes look back a few seconds (an open transaction's change is not missed): the adds come again.
        got = {e["plate"]: e["live"] for e in changes.json()["entries"] if e["list"].endswith(tag)}
        assert got == {"CAR101": True, "CAR102": False}
        assert (
            await client.get("/v1/hotlist/agency-entries", params={"changed_since": "2026-01-01T00:00:00"}, headers=car)
        ).status_code == 422
        assert (await client.get("/v1/hotlist/agency-entries", headers=tokens("auditor"))).status_code == 403


def _case(covert: bool) -> dict[str, str]:
    # A covert list serves one case and ends.
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    return {"case_number": "CR-2026-0001", "expires_at": soon} if covert else {}


async def test_a_covert_hit_goes_to_the_lists_agency_whatever_its_owner_text_says(
    hl_settings: Settings, tokens
) -> None:  # type: ignore[no-untyped-def]
    sup_b = tokens("supervisor", agency="MN0279999")
    async with running(create_app(hl_settings)) as client:
        # B names agency A as the list's "owner": free text, which must not route B's hits to A's stream.
        made = await client.post(
            "/v1/lists", headers=sup_b, json={"name": "cv-owner", "owner": "MN0271200", "covert": True, **_case(True)}
        )
        assert made.status_code == 201, made.text
        added = await client.post("/v1/lists/cv-owner/entries", headers=sup_b, json=_entry("CVB777"))
        assert added.status_code == 201, added.text
        read_b = {**READ, "agency": "MN0279999", "read_id": "r-cv-b", "plate": "CVB777"}
        (h,) = (await client.post("/v1/match", headers=tokens("service"), json=read_b)).json()["hits"]
        assert h["covert"] is True and h["list_owner"] == "MN0279999"

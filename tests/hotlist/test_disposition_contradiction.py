"""A disposition that contradicts its verification is a 409: a read the officer found inaccurate cannot make a valid
hit nor an arrest; the same hit takes an invalid/misread disposition. The other way too: a read the officer found
accurate cannot be a misread."""

from __future__ import annotations

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, row
from tests.support.apps import running

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-12"}


async def test_disposition_contradicting_verification_is_409(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    officer = tokens("officer", agency="MN0271200")
    bca.publish(extract([row("V400000001", "DC0001")]))
    async with running(create_app(hl_settings)) as client:
        await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        match = await client.post(
            "/v1/match", headers=tokens("service"), json={"read_id": "r-dc", "plate": "DC0001", "state": "MN", **READ}
        )
        hit_id = match.json()["hits"][0]["hit_id"]
        checked = await client.post(
            f"/v1/hits/{hit_id}/verification", headers=officer, json={"read_accurate": False, "state_matches": True}
        )
        assert checked.status_code == 201, checked.text
        for body in ({"valid": True, "action": "no_action"}, {"valid": False, "action": "arrest"}):
            resp = await client.post(f"/v1/hits/{hit_id}/dispositions", headers=officer, json=body)
            assert resp.status_code == 409, (body, resp.text)
            assert "not accurate" in resp.json()["detail"]
        ok = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": False, "action": "misread"}
        )
        assert ok.status_code == 201, ok.text


async def test_misread_after_an_accurate_read_is_409(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    officer = tokens("officer", agency="MN0271200")
    bca.publish(extract([row("V400000002", "DC0002")]))
    async with running(create_app(hl_settings)) as client:
        await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        match = await client.post(
            "/v1/match", headers=tokens("service"), json={"read_id": "r-dc2", "plate": "DC0002", "state": "MN", **READ}
        )
        hit_id = match.json()["hits"][0]["hit_id"]
        checked = await client.post(
            f"/v1/hits/{hit_id}/verification", headers=officer, json={"read_accurate": True, "state_matches": True}
        )
        assert checked.status_code == 201, checked.text
        resp = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": False, "action": "misread"}
        )
        assert resp.status_code == 409 and "was accurate" in resp.json()["detail"], resp.text
        ok = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": True, "action": "no_action"}
        )
        assert ok.status_code == 201, ok.text

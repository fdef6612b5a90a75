"""Control characters and numbers PostgreSQL cannot hold, at hotlist: a clear 422, never a 500."""

from __future__ import annotations

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.test_lists import _entry
from tests.support.apps import running


async def test_control_characters_and_huge_numbers_are_422(hl_settings: Settings, tokens) -> None:  # type: ignore[no-untyped-def]
    sup = tokens("supervisor", agency="MN0271200")
    async with running(create_app(hl_settings)) as client:
        owner = await client.post("/v1/lists", headers=sup, json={"name": "poison-owner", "owner": "MN\x0027"})
        assert owner.status_code == 422 and "control characters" in owner.text, owner.text
        made = await client.post("/v1/lists", headers=sup, json={"name": "poison-2026", "owner": "MN0271200"})
        assert made.status_code == 201, made.text
        reason = await client.post(
            "/v1/lists/poison-2026/entries", headers=sup, json=_entry("PS1001", reason="stolen\x00car")
        )
        assert reason.status_code == 422, reason.text
        good = await client.post("/v1/lists/poison-2026/entries", headers=sup, json=_entry("PS1002"))
        assert good.status_code == 201, good.text

        delta = await client.get("/v1/hotlist/delta", params={"since": 2**63}, headers=sup)
        assert delta.status_code == 422, delta.text
        for value in ("1e308", str(2**63), "inf"):
            pending = await client.get("/v1/hits/pending", params={"older_than_s": value}, headers=sup)
            assert pending.status_code == 422, (value, pending.text)
        nul = await client.get("/v1/lists/poison-2026/entries?plate=a%00b", headers=sup)
        assert nul.status_code == 422, nul.text

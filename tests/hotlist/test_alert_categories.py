"""Only the policy's categories alert (stolen or wanted vehicles, license status, warrants, agency investigation
lists); the others stay in the loaded list and raise no hit. The set is a setting."""

from __future__ import annotations

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, row
from tests.support.apps import running

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-12"}


async def test_only_policy_categories_alert(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    bca.publish(
        extract(
            [
                row("V200000001", "AC1001"),  # stolen vehicle: alerts
                row("T200000002", "AC1002"),  # gang member (registered owner): loaded, never alerts
                row("X200000003", "AC1003"),  # sex-offender registry: loaded, never alerts
                row("S200000004", "AC1004"),  # license suspended: alerts
            ]
        )
    )

    async def hits(client, plate: str) -> list[str]:  # type: ignore[no-untyped-def]
        resp = await client.post(
            "/v1/match", headers=tokens("service"), json={"read_id": f"cat-{plate}", "plate": plate, **READ}
        )
        assert resp.status_code == 200, resp.text
        return [h["category"] for h in resp.json()["hits"]]

    async with running(create_app(hl_settings)) as client:
        loaded = (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).json()
        assert loaded["outcome"] == "loaded" and loaded["entries"] == 4  # every entry is loaded
        assert await hits(client, "AC1001") == ["stolen_vehicle"]
        assert await hits(client, "AC1002") == []
        assert await hits(client, "AC1003") == []
        assert await hits(client, "AC1004") == ["license_suspended"]

    # An agency that widens the set by configuration gets those hits.
    wider = hl_settings.model_copy(
        update={"hotlist_alert_categories": hl_settings.hotlist_alert_categories | {"gang_terrorist"}}
    )
    async with running(create_app(wider)) as client:
        await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        assert await hits(client, "AC1002") == ["gang_terrorist"]

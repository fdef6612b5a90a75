"""A fixed reader's reads without GPS take its location; one captured before the reader was placed where it stands
(a move's date) is quarantined with the reason, not filed at the new place (the subd. 8 register says where it was)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.ingest.agents_support import drain, post, register, results_body, rows
from tests.ingest.test_agents import admin_token, agent_app  # noqa: F401 - the fixtures


async def test_reads_from_before_the_placement_date_are_quarantined(agent_app: Any, admin_token: str) -> None:  # noqa: F811
    app, client, own = agent_app
    placed = datetime.now(UTC) - timedelta(days=2)
    agent = await register(
        client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}", placed_on=placed.date().isoformat()
    )
    before = int((placed - timedelta(days=3)).timestamp() * 1000)
    after = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    assert (await post(client, agent["token"], results_body("PLB001", before))).status_code == 200
    assert (await post(client, agent["token"], results_body("PLA001", after))).status_code == 200
    await drain(app)
    stored = await rows(own, "SELECT plate FROM ingest.reads WHERE plate IN ('PLB001', 'PLA001')")
    assert [r.plate for r in stored] == ["PLA001"]
    listed = await client.get(
        "/v1/agents/quarantine",
        params={"reason": "why did the pole's reads go missing", "agent_id": agent["agent_id"]},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["posts"]
    assert entry["reason"].startswith("captured before the reader was placed"), entry

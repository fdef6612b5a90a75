"""A list never shrinks by accident: an extract cut mid-row or at a row boundary, served as a complete 200, leaves
the list in force, degrades /readyz and sets the alert's gauge; `alpr hotlist sync --accept-drop` loads a large drop
on an operator's word, audited. A source that trickles fails within the sync deadline, counted; the failures-in-row
gauge shows the whole run, past the degraded threshold."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alpr.cli import main as cli
from services.hotlist.main import create_app
from shared.settings import Settings, get_settings
from tests.hotlist.bca import FakeBca, extract, generated
from tests.support.apps import running


@pytest.fixture
def guarded(hl_settings: Settings) -> Settings:
    return hl_settings.model_copy(update={"hotlist_max_drop_share": 0.10, "hotlist_sync_deadline_s": 1.5})


async def _gauges(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
    families = text_string_to_metric_families((await client.get("/metrics")).text)
    return {s.name: s.value for f in families for s in f.samples if s.name.startswith("alpr_hotlist_sync_")}


async def _match(client, tokens, plate: str) -> list[str]:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/v1/match",
        headers=tokens("service"),
        json={"read_id": f"r-{plate}", "plate": plate, "state": "MN", "captured_at": "2026-11-25T10:00:00Z"},
    )
    assert resp.status_code == 200, resp.text
    return [h["entry_id"] for h in resp.json()["hits"]]


async def test_a_cut_extract_leaves_the_list_in_force(guarded: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    admin = tokens("admin")
    rows = generated(100, prefix="CU", seed=21)
    whole = extract(rows)
    async with running(create_app(guarded)) as client:
        bca.publish(whole)
        loaded = (await client.post("/v1/hotlist/sync", headers=admin)).json()
        assert loaded["outcome"] == "loaded" and loaded["entries"] == 100
        # Cut mid-row at 40 %, served as a complete 200 (its own Content-Length): the last line does not end.
        mid_row = whole[: int(len(whole) * 0.4)]
        assert not mid_row.endswith(b"\n")
        bca.publish(mid_row)
        cut = await client.post("/v1/hotlist/sync", headers=admin)
        assert cut.status_code == 503, cut.text
        assert cut.json()["detail"]["outcome"] == "incomplete"
        assert "last line does not end" in cut.json()["detail"]["message"]
        ready = (await client.get("/readyz")).json()
        assert ready["status"] == "degraded" and "incomplete" in ready["warnings"]["hotlist_sync"]
        assert (await _gauges(client))["alpr_hotlist_sync_incomplete"] == 1
        # Cut at a row boundary: every line ends, but 60 % of the entries are gone.
        boundary = extract(rows[:40])
        bca.publish(boundary)
        short = await client.post("/v1/hotlist/sync", headers=admin)
        assert short.status_code == 503 and short.json()["detail"]["outcome"] == "incomplete"
        assert "40 entries, 60% fewer than the 100 in force" in short.json()["detail"]["message"]
        # The list in force is whole: a plate from the part cut away still hits.
        version = (await client.get("/v1/hotlist/version", headers=tokens("officer"))).json()
        assert (version["version"], version["entries"]) == (loaded["version"], 100)
        assert await _match(client, tokens, "CU0090") == [rows[90].split(",")[0]]
        # A drop within the limit (5 %) loads as usual, and /readyz is ready again.
        bca.publish(extract(rows[:95]))
        small_drop = (await client.post("/v1/hotlist/sync", headers=admin)).json()
        assert small_drop["outcome"] == "loaded" and small_drop["entries"] == 95
        assert (await client.get("/readyz")).json()["status"] == "ready"
        assert (await _gauges(client))["alpr_hotlist_sync_incomplete"] == 0


@pytest.fixture
def cli_env(guarded: Settings) -> Iterator[None]:
    env = {
        "ALPR_DATABASE_URL": guarded.database_url or "",
        "ALPR_HOTLIST_SOURCE_URL": guarded.hotlist_source_url or "",
        "ALPR_HOTLIST_SOURCE_CREDENTIAL": guarded.hotlist_source_credential.get_secret_value(),  # type: ignore[union-attr]
        "ALPR_HOTLIST_MAX_DROP_SHARE": "0.1",
        "ALPR_LOG_LEVEL": "ERROR",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


async def test_accept_drop_loads_a_short_list_on_an_operators_word(guarded: Settings, bca: FakeBca, cli_env) -> None:  # type: ignore[no-untyped-def]
    bca.publish(extract(generated(50, prefix="AD", seed=31)))
    # Whatever list an earlier test left in force (one database for the session): this one replaces it.
    assert await asyncio.to_thread(cli, ["hotlist", "sync", "--accept-drop"]) == 0
    bca.publish(extract(generated(20, prefix="AD", seed=32)))
    assert await asyncio.to_thread(cli, ["hotlist", "sync"]) == 1  # refused: 60 % fewer
    assert await asyncio.to_thread(cli, ["hotlist", "sync", "--accept-drop"]) == 0
    engine = create_async_engine(guarded.database_url or "")
    try:
        async with engine.connect() as conn:
            entries = (
                await conn.execute(text("SELECT entries FROM hotlist.list_versions WHERE is_current"))
            ).scalar_one()
            audit = (
                await conn.execute(
                    text(
                        "SELECT actor, details FROM audit.audit_log WHERE action = 'hotlist.load' "
                        "ORDER BY at DESC LIMIT 1"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    assert entries == 20
    assert audit.actor.startswith("cli:")
    assert audit.details["accepted_drop"] == {"entries_in_force": 50, "entries_new": 20, "max_drop_share": 0.1}


async def test_a_trickling_source_fails_within_the_deadline(guarded: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    admin = tokens("admin")
    async with running(create_app(guarded)) as client:
        bca.publish(extract(generated(30, prefix="TR", seed=41)))
        bca.mode = "trickle"  # half the file, then a byte every 0.2 s: each read well inside its 0.5 s timeout
        before = (await _gauges(client))["alpr_hotlist_sync_failures_in_row"]
        t0 = time.monotonic()
        slow = await client.post("/v1/hotlist/sync", headers=admin)
        took = time.monotonic() - t0
        assert slow.status_code == 503, slow.text
        assert slow.json()["detail"]["message"] == "the download passed the sync deadline of 1.5 s"
        assert took < 1.5 + 2, took
        # Counted as a failure, and the lock is free for the next attempt (not "busy").
        assert (await _gauges(client))["alpr_hotlist_sync_failures_in_row"] == before + 1
        for _ in range(3):
            again = await client.post("/v1/hotlist/sync", headers=admin)
            assert again.status_code == 503 and "deadline" in again.json()["detail"]["message"]
        # The gauge shows the whole run, past the degraded threshold (3).
        assert (await _gauges(client))["alpr_hotlist_sync_failures_in_row"] == before + 4
        bca.mode = "ok"
        assert (await client.post("/v1/hotlist/sync", headers=admin)).status_code == 200
        assert (await _gauges(client))["alpr_hotlist_sync_failures_in_row"] == 0

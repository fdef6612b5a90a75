"""Sync from a real HTTP server playing the BCA: new, unchanged, changed, partly bad, mostly bad, down, timing
out, garbage; compressed bodies; credentials in a header; versions kept; the CLI; staleness."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alpr.cli import main as cli
from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, generated, row
from tests.support.apps import running


async def _version(client, auth) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.get("/v1/hotlist/version", headers=auth("officer"))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _count(settings: Settings, sql: str, **params: object) -> int:
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql), params)).scalar_one())
    finally:
        await engine.dispose()


async def test_new_unchanged_changed_with_conditional_requests(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    admin = tokens("admin")
    async with running(create_app(hl_settings)) as client:
        bca.publish(extract(generated(50, prefix="SN")), packing="gzip-file")
        first = await client.post("/v1/hotlist/sync", headers=admin)
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "loaded" and first.json()["entries"] == 50
        v1 = first.json()["version"]
        assert (await _version(client, tokens))["version"] == v1
        # Credentials travel in a header, never in the URL.
        assert bca.requests[-1]["authorization"] and "YnVyZWF1" not in bca.requests[-1]["url"]

        again = await client.post("/v1/hotlist/sync", headers=admin)
        assert again.json() == {**again.json(), "outcome": "unchanged", "version": v1}
        assert bca.requests[-1]["if-none-match"] == bca.etag and bca.statuses[-1] == 304

        # Same content under new validators (no 304): recognised by its digest, still no new version.
        bca.publish(bca.body, packing="zip")
        bca.etag = '"other"'
        same = await client.post("/v1/hotlist/sync", headers=admin)
        assert same.json()["outcome"] == "unchanged" and same.json()["version"] == v1

        changed_rows = generated(50, prefix="SN")[:40] + [row("W900000001", "SN-9999")]
        bca.publish(extract(changed_rows), packing="content-encoding")
        changed = await client.post("/v1/hotlist/sync", headers=admin)
        assert changed.json()["outcome"] == "loaded" and changed.json()["version"] > v1
        assert changed.json()["entries"] == 41
        version = await _version(client, tokens)
        assert version["version"] == changed.json()["version"] and version["entries"] == 41
        assert version["stale"] is False
        hit = await client.post(
            "/v1/match",
            headers=tokens("service"),
            json={"read_id": "r-sync-1", "plate": "SN9999", "state": "MN", "captured_at": "2026-11-25T10:00:00Z"},
        )
        assert [h["entry_id"] for h in hit.json()["hits"]] == ["W900000001"]


async def test_partly_bad_loads_good_rows_and_reports_each_bad_one(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    rows = generated(60, prefix="PB")
    rows[4] = "V123,MN0271200,20211122,PB0004,MN,2022,PC,2013,CHEV,AVA,4D,BLK"  # short NIC
    rows[9] = "Z100000009,MN0271200,20211122,PB0009,MN,2022,PC,2013,CHEV,AVA,4D,BLK"  # unknown code
    async with running(create_app(hl_settings)) as client:
        bca.publish(extract(rows))
        resp = await client.post("/v1/hotlist/sync", headers=tokens("admin"))
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["outcome"] == "loaded" and body["entries"] == 58 and body["bad_rows"] == 2
    # Line numbers count the header as line 1.
    assert body["bad"][0] == {"line": 6, "reason": "NIC number 'V123' is not a file code and 9 digits"}
    assert body["bad"][1] == {"line": 11, "reason": "unknown file code 'Z'"}
    assert body["unknown_codes"] == {"Z": 1}


async def test_mostly_bad_down_timeout_garbage_keep_the_old_list(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    admin = tokens("admin")
    async with running(create_app(hl_settings)) as client:
        bca.publish(extract(generated(20, prefix="MB")))
        good = (await client.post("/v1/hotlist/sync", headers=admin)).json()
        assert good["outcome"] == "loaded"

        mostly_bad = generated(20, prefix="MB", seed=2)
        mostly_bad[:5] = [r.replace(",MN,", ",MINN,") for r in mostly_bad[:5]]
        bca.publish(extract(mostly_bad))
        rejected = await client.post("/v1/hotlist/sync", headers=admin)
        assert rejected.status_code == 503
        detail = rejected.json()["detail"]
        assert detail["outcome"] == "rejected" and detail["bad_rows"] == 5
        assert "previous list stays in force" in detail["message"]
        assert detail["bad"][0] == {"line": 2, "reason": "state 'MINN' is not a 2-letter code"}

        bca.mode = "down"
        down = await client.post("/v1/hotlist/sync", headers=admin)
        assert down.status_code == 503 and down.json()["detail"]["message"] == "source answered 503"
        assert bca.statuses[-2:] == [503, 503]  # retried once

        bca.mode = "timeout"
        slow = await client.post("/v1/hotlist/sync", headers=admin)
        assert slow.json()["detail"]["message"] == "source timed out"

        bca.mode = "garbage"
        garbage = await client.post("/v1/hotlist/sync", headers=admin)
        assert garbage.json()["detail"]["outcome"] == "rejected"
        assert "not a hot-list extract" in garbage.json()["detail"]["message"]

        bca.publish(b"\x1f\x8b\x08\x00corrupt", packing="plain")
        corrupt = await client.post("/v1/hotlist/sync", headers=admin)
        assert "corrupt" in corrupt.json()["detail"]["message"]

        too_big = hl_settings.model_copy(update={"hotlist_max_bytes": 500})
        bca.publish(extract(generated(20, prefix="MB", seed=3)), packing="content-encoding")
        async with running(create_app(too_big)) as small:
            big = await small.post("/v1/hotlist/sync", headers=admin)
            assert "limit of 500" in big.json()["detail"]["message"]

        # Through all of it the first list stayed in force.
        assert (await _version(client, tokens))["version"] == good["version"]
        match = await client.post(
            "/v1/match",
            headers=tokens("service"),
            json={"read_id": "r-mb", "plate": "MB0003", "captured_at": "2026-11-25T10:00:00Z"},
        )
        assert match.json()["list_version"] == good["version"] and len(match.json()["hits"]) == 1

        # Failures in a row turn /readyz degraded, with the latest reason; it still answers 200 (matching works).
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        warning = ready.json()["warnings"]["hotlist_sync"]
        assert warning.startswith(
            "the last 6 hot-list syncs failed (latest: list is"
        )  # the whole run and "limit of 500" in warning

        # The next good file: the refused ones used no version number.
        bca.publish(extract(generated(20, prefix="MB", seed=4)))
        after = (await client.post("/v1/hotlist/sync", headers=admin)).json()
        assert after["outcome"] == "loaded" and after["version"] == good["version"] + 1
        ready = await client.get("/readyz")
        assert ready.json()["status"] == "ready" and "warnings" not in ready.json()

    outcomes = await _count(
        hl_settings,
        "SELECT count(*) FROM hotlist.sync_runs WHERE outcome IN ('rejected', 'failed') AND started_at > "
        "(SELECT loaded_at FROM hotlist.list_versions WHERE id = :v) AND started_at < "
        "(SELECT loaded_at FROM hotlist.list_versions WHERE id = :v + 1)",
        v=good["version"],
    )
    assert outcomes == 6


async def test_server_unreachable_and_cli_sync_keep_versions(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    nowhere = hl_settings.model_copy(update={"hotlist_source_url": "http://127.0.0.1:9/hotlist/extract"})
    async with running(create_app(nowhere)) as client:
        resp = await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]["message"]

    # `alpr hotlist sync` by hand, three loads: only the last `hotlist_versions_kept` keep their rows.
    env = {
        "ALPR_DATABASE_URL": hl_settings.database_url,
        "ALPR_HOTLIST_SOURCE_URL": bca.url,
        "ALPR_HOTLIST_SOURCE_CREDENTIAL": hl_settings.hotlist_source_credential.get_secret_value(),  # type: ignore[union-attr]
        "ALPR_HOTLIST_VERSIONS_KEPT": "2",
        "ALPR_HOTLIST_MAX_DROP_SHARE": "1",  # lists of every size in the session's one database
        "ALPR_LOG_LEVEL": "ERROR",
    }
    import os

    from shared.settings import get_settings

    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    get_settings.cache_clear()
    try:
        versions = []
        for seed in (11, 12, 13):
            bca.publish(extract(generated(10, prefix="CL", seed=seed)))
            assert await asyncio.to_thread(cli, ["hotlist", "sync"]) == 0
            versions.append(await _count(hl_settings, "SELECT id FROM hotlist.list_versions WHERE is_current"))
        bca.mode = "down"
        assert await asyncio.to_thread(cli, ["hotlist", "sync"]) == 1
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
    assert versions == sorted(versions) and len(set(versions)) == 3
    kept = await _count(hl_settings, "SELECT count(*) FROM hotlist.list_versions WHERE NOT dropped")
    assert kept == 2
    rows_of_first = await _count(
        hl_settings,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'hotlist' AND tablename = :t",
        t=f"bca_entries_v{versions[0]}",
    )
    assert rows_of_first == 0


async def test_stale_list_warns_on_readyz_and_version(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    async with running(create_app(hl_settings)) as client:
        bca.publish(extract(generated(5, prefix="ST")))
        assert (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).status_code == 200
        fresh = await client.get("/readyz")
        assert fresh.status_code == 200 and "warnings" not in fresh.json()
    stale = hl_settings.model_copy(update={"hotlist_stale_after_s": 0.001})
    async with running(create_app(stale)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200  # a stale list warns; matching still works
        assert "is stale" in ready.json()["warnings"]["hotlist_list"]
        assert (await _version(client, tokens))["stale"] is True
        match = await client.post(
            "/v1/match",
            headers=tokens("service"),
            json={"read_id": "r-st", "plate": "ST0001", "captured_at": "2026-11-25T10:00:00Z"},
        )
        assert match.json()["stale"] is True and len(match.json()["hits"]) == 1

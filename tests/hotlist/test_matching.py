"""Matching: exact and misread-tolerant, owner warnings, state checks, one version per answer while lists switch,
and every worker following the current version."""

from __future__ import annotations

import asyncio

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, row
from tests.support.apps import running

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-12"}


async def _match(client, auth, plate: str, **extra: object) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.post(
        "/v1/match", headers=auth("service"), json={"read_id": f"r-{plate}", "plate": plate, **READ, **extra}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_exact_misread_owner_warning_and_state_check(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    bca.publish(
        extract(
            [
                row("V100000001", "MQ8B25"),  # stolen vehicle
                row("W100000002", "MQ7700", "WI"),  # wanted person: concerns the registered owner
                row("D100000003", "MQ7700", "MN"),  # same plate, other state: another entry
                row("P100000004", "MQ-55 1"),  # stolen plate, written with a dash and a space
            ]
        )
    )
    async with running(create_app(hl_settings)) as client:
        assert (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).json()["outcome"] == "loaded"

        exact = await _match(client, tokens, "mq-8b25", state="MN")
        (hit,) = exact["hits"]
        assert hit["match"] == "exact" and hit["category"] == "stolen_vehicle" and hit["concerns"] == "vehicle"
        assert hit["owner_warning"] is None and hit["state_check"] == "match" and hit["list"] == "bca"
        assert hit["list_version"] == exact["list_version"] and hit["notice"].startswith("A hit alone")
        retried = await _match(client, tokens, "mq-8b25", state="MN")  # ingest retrying the same read
        assert [h["hit_id"] for h in retried["hits"]] == [hit["hit_id"]]

        # OCR confusions: 8/B, 2/Z, 5/S, 0/O/D/Q ...
        misread = await _match(client, tokens, "MQBBZS")
        assert [(h["entry_id"], h["match"], h["read_plate"], h["entry_plate"]) for h in misread["hits"]] == [
            ("V100000001", "misread", "MQBBZS", "MQ8B25")
        ]
        assert misread["hits"][0]["state_check"] == "unknown"
        assert (await _match(client, tokens, "MO8B25"))["hits"][0]["match"] == "misread"
        assert (await _match(client, tokens, "MQ8B26"))["hits"] == []  # 6 is not 5: no match

        # The recognizer's alternative reading matches; the read plate itself differs, so it is flagged misread.
        alt = await _match(client, tokens, "NN8B25", alternatives=["MQ8B25"])
        assert [(h["entry_id"], h["match"]) for h in alt["hits"]] == [("V100000001", "misread")]

        owner = await _match(client, tokens, "MQ7700", state="WI")
        by_entry = {h["entry_id"]: h for h in owner["hits"]}
        assert set(by_entry) == {"W100000002", "D100000003"}
        assert by_entry["W100000002"]["concerns"] == "registered_owner"
        assert by_entry["W100000002"]["owner_warning"] == "The driver may not be the registered owner."
        assert by_entry["W100000002"]["state_check"] == "match"
        assert by_entry["D100000003"]["category"] == "license_revoked"
        assert by_entry["D100000003"]["state_check"] == "mismatch"

        assert (await _match(client, tokens, "MQ551"))["hits"][0]["entry_plate"] == "MQ551"

        refused = await client.post(
            "/v1/match", headers=tokens("officer"), json={"read_id": "x", "plate": "MQ551", **READ}
        )
        assert refused.status_code == 403
        bad = await client.post("/v1/match", headers=tokens("service"), json={"read_id": "x", "plate": "!!", **READ})
        assert bad.status_code == 422 and "plausible" in str(bad.json()["detail"])


async def test_switch_is_atomic_under_concurrent_matching_and_workers_follow(  # type: ignore[no-untyped-def]
    hl_settings: Settings, bca: FakeBca, tokens
) -> None:
    # Version A: plate AT0001 stolen, AT0002 absent. Version B: AT0001 wanted, AT0002 stolen plate.
    list_a = extract([row("V200000001", "AT0001"), *(row(f"V2{i:08d}", f"AX{i:04d}") for i in range(10, 3000))])
    list_b = extract(
        [
            row("W200000001", "AT0001"),
            row("P200000002", "AT0002"),
            *(row(f"W2{i:08d}", f"AY{i:04d}") for i in range(10, 3000)),
        ]
    )
    bca.publish(list_a)
    async with running(create_app(hl_settings)) as client, running(create_app(hl_settings)) as other:
        va = (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).json()["version"]
        expected = {
            va: {("AT0001", "V200000001")},
        }
        bca.publish(list_b)
        seen: list[tuple[int, set[tuple[str, str]]]] = []
        stop = asyncio.Event()

        async def reader() -> None:
            while not stop.is_set():
                a = await _match(client, tokens, "AT0001")
                b = await _match(client, tokens, "AT0002")
                if a["list_version"] == b["list_version"]:
                    seen.append((a["list_version"], {(h["read_plate"], h["entry_id"]) for h in a["hits"] + b["hits"]}))
                for answer in (a, b):
                    assert all(h["list_version"] == answer["list_version"] for h in answer["hits"])

        readers = [asyncio.create_task(reader()) for _ in range(4)]
        synced = await client.post("/v1/hotlist/sync", headers=tokens("admin"))
        await asyncio.sleep(0)  # let readers run against the new version too
        for _ in range(3):
            await _match(client, tokens, "AT0001")
        stop.set()
        await asyncio.gather(*readers)
        vb = synced.json()["version"]
        expected[vb] = {("AT0001", "W200000001"), ("AT0002", "P200000002")}
        versions = {v for v, _ in seen}
        assert va in versions and vb in versions
        for v, hits in seen:
            assert hits == expected[v], (v, hits)

        # The other worker notices the switch by polling the current version id.
        deadline = asyncio.get_running_loop().time() + 10
        while (await other.get("/v1/hotlist/version", headers=tokens("service"))).json()["version"] != vb:
            assert asyncio.get_running_loop().time() < deadline, "the other worker never switched"
            await asyncio.sleep(0.05)
        answer = await _match(other, tokens, "AT0002")
        assert answer["list_version"] == vb and answer["hits"][0]["entry_id"] == "P200000002"


async def test_batch_answers_each_read_in_order_and_a_retried_batch_gets_the_same_hits(  # type: ignore[no-untyped-def]
    hl_settings: Settings, bca: FakeBca, tokens
) -> None:
    """Ingest sends a whole group-commit batch in one call: one answer per read, in order, as /v1/match answers it;
    a batch retried (its answer lost) finds the hits it stored, and the same read twice in a batch gets one hit."""
    bca.publish(extract([row("V200000001", "BT4411"), row("V200000002", "BT5522")]))
    async with running(create_app(hl_settings)) as client:
        assert (await client.post("/v1/hotlist/sync", headers=tokens("admin"))).json()["outcome"] == "loaded"
        reads = [
            {"read_id": "b-1", "plate": "BT4411", **READ},
            {"read_id": "b-2", "plate": "ZZ0000", **READ},
            {"read_id": "b-3", "plate": "BT5522", "state": "mn", **READ},
            {"read_id": "b-1", "plate": "BT4411", **READ},
        ]
        resp = await client.post("/v1/match/batch", headers=tokens("service"), json={"reads": reads})
        assert resp.status_code == 200, resp.text
        results = resp.json()["results"]
        assert [[h["entry_id"] for h in r["hits"]] for r in results] == [
            ["V200000001"],
            [],
            ["V200000002"],
            ["V200000001"],
        ]
        assert results[0]["hits"][0]["hit_id"] == results[3]["hits"][0]["hit_id"]
        single = await _match(client, tokens, "BT5522", read_id="b-3", state="MN")
        again = (await client.post("/v1/match/batch", headers=tokens("service"), json={"reads": reads})).json()
        assert [r["hits"] for r in again["results"]] == [r["hits"] for r in results]
        assert single["hits"][0]["hit_id"] == results[2]["hits"][0]["hit_id"]

        refused = await client.post("/v1/match/batch", headers=tokens("officer"), json={"reads": reads})
        assert refused.status_code == 403
        empty = await client.post("/v1/match/batch", headers=tokens("service"), json={"reads": []})
        assert empty.status_code == 422

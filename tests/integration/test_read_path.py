"""A read through the whole back office: the car posts a photo, recognition reads the plate, hotlist matches it,
and the answer carries the hit. Real apps on real PostgreSQL and S3; only the BCA is played by a local server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from tests.hotlist.bca import extract, row
from tests.ingest.conftest import AGENCY
from tests.integration.conftest import OWNER_AGENCY, System, eventually
from tests.recognition.render import jpeg, plate_image

NOTICE = "A hit alone is not probable cause: confirm the hit before acting."
OWNER_WARNING = "The driver may not be the registered owner."

# Plates the renderer draws and recognition reads (tests/recognition): a wanted owner, a stolen vehicle.
WANTED, STOLEN = "KXR482", "ABC1234"


def _entry(plate: str, **over: object) -> dict[str, object]:
    return {
        "plate": plate,
        "state": "MN",
        "case_number": "CR-2026-0777",
        "reason": "vehicle seen at a burglary series",
        "owner": "det. 4411",
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        **over,
    }


async def test_photo_without_text_is_recognised_matched_and_the_hit_answered(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    bca_server.publish(extract([row("W700000001", WANTED), row("V700000002", STOLEN)]))
    version = await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201

    resp = await officer.post_read(officer.meta(), photo=jpeg(plate_image(WANTED)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["plate"], body["plate_source"]) == ("complete", WANTED, "recognition")
    assert body["plate_confidence"] > 0.5 and body["state"] == "MN"
    (hit,) = body["hits"]
    assert (hit["list"], hit["entry_id"], hit["list_version"]) == ("bca", "W700000001", version)
    assert (hit["category"], hit["concerns"], hit["owner_warning"]) == (
        "wanted_person",
        "registered_owner",
        OWNER_WARNING,
    )
    assert (hit["match"], hit["state_check"], hit["covert"], hit["list_owner"]) == ("exact", "match", False, None)
    assert hit["notice"] == NOTICE and body["notice"] == NOTICE

    # The hit hotlist stored is the one the car got: the officer records the checks against it.
    checked = await system.hotlist.post(
        f"/v1/hits/{hit['hit_id']}/verification",
        json={"read_accurate": True, "state_matches": True},
        headers={"Authorization": f"Bearer {officer.token}"},
    )
    assert checked.status_code == 201, checked.text
    assert checked.json()["still_current"] is True and checked.json()["checked_version"] == version

    # Plate text from the car: recognition is skipped (the photo shows another plate; the car's text stands).
    car = await officer.post_read(officer.meta(plate=STOLEN, state="MN"), photo=jpeg(plate_image(WANTED, seed=3)))
    assert car.status_code == 200, car.text
    assert (car.json()["plate"], car.json()["plate_source"]) == (STOLEN, "car")
    (stolen,) = car.json()["hits"]
    assert (stolen["category"], stolen["concerns"], stolen["owner_warning"]) == ("stolen_vehicle", "vehicle", None)

    # A photo with no hot plate: complete, no hit, no notice.
    clean = await officer.post_read(officer.meta(), photo=jpeg(plate_image("PZM337")))
    assert clean.status_code == 200 and clean.json()["hits"] == [] and clean.json()["notice"] is None

    # A retry answers the first result and stores no second hit.
    meta = officer.meta()
    first = await officer.post_read(meta, photo=jpeg(plate_image(WANTED, seed=5)))
    again = await officer.post_read(meta, photo=jpeg(plate_image(WANTED, seed=5)))
    assert again.json()["duplicate"] is True and again.json()["hits"] == first.json()["hits"]


async def test_second_read_when_configured_replaces_the_car_text_and_keeps_it(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    bca_server.publish(extract([row("W700000001", WANTED), row("V700000002", STOLEN)]))
    await system.sync()
    client = await system.another_ingest(ingest_second_read=True)
    officer = system.officer(client)
    assert (await officer.start()).status_code == 201
    # The car's reader misread the plate (a character it does not confuse): recognition reads it again.
    resp = await officer.post_read(officer.meta(plate="KXR487"), photo=jpeg(plate_image(WANTED)))
    assert resp.status_code == 200, resp.text
    assert (resp.json()["plate"], resp.json()["plate_source"]) == (WANTED, "recognition")
    assert [h["entry_id"] for h in resp.json()["hits"]] == ["W700000001"]
    # JSON without a photo: nothing to read again, the car's text is matched.
    meta_only = await officer.post_read(officer.meta(plate=STOLEN))
    assert meta_only.status_code == 200 and meta_only.json()["plate_source"] == "car"
    assert [h["entry_id"] for h in meta_only.json()["hits"]] == ["V700000002"]


async def test_covert_hits_go_to_the_list_owner_never_to_the_car(system: System) -> None:
    # The officers' agency's own covert list: its hits go to its supervisors' stream, never to a car. Another
    # agency's list of the same plate never sees these reads (a list matches its own agency's reads only).
    owner_sup = system.auth("supervisor", agency=AGENCY)
    case = {"case_number": "CR-2026-0777", "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}
    made = await system.hotlist.post(
        "/v1/lists",
        headers=owner_sup,
        json={"name": "covert-int", "owner": AGENCY, "priority": 9, "covert": True, **case},
    )
    assert made.status_code == 201, made.text
    assert (
        await system.hotlist.post("/v1/lists/covert-int/entries", headers=owner_sup, json=_entry("CVT901"))
    ).status_code == 201
    open_list = await system.hotlist.post(
        "/v1/lists", headers=owner_sup, json={"name": "open-int", "owner": AGENCY, "priority": 3}
    )
    assert open_list.status_code == 201
    assert (
        await system.hotlist.post("/v1/lists/open-int/entries", headers=owner_sup, json=_entry("OPN902"))
    ).status_code == 201
    other_sup = system.auth("supervisor", agency=OWNER_AGENCY)
    other = {"name": "covert-int", "owner": OWNER_AGENCY, "covert": True, **case}
    assert (await system.hotlist.post("/v1/lists", headers=other_sup, json=other)).status_code == 201
    assert (
        await system.hotlist.post("/v1/lists/covert-int/entries", headers=other_sup, json=_entry("CVT901"))
    ).status_code == 201

    before = await system.agency_events(AGENCY)
    since = before[-1]["id"] if before else 0
    other_before = await system.agency_events(OWNER_AGENCY)
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    covert = await officer.post_read(officer.meta(plate="CVT901", state="MN"))
    assert covert.status_code == 200, covert.text
    assert covert.json()["hits"] == [] and covert.json()["notice"] is None  # nothing tells the car

    visible = await officer.post_read(officer.meta(plate="OPN902", state="MN"))
    (hit,) = visible.json()["hits"]
    assert (hit["list"], hit["list_owner"], hit["covert"], hit["priority"]) == ("open-int", AGENCY, False, 3)

    owner_events = await system.agency_events(AGENCY, since)
    assert [(e["kind"], e["payload"]["read"]["plate"]) for e in owner_events] == [("covert_hit", "CVT901")]
    assert owner_events[0]["payload"]["list_owner"] == AGENCY and owner_events[0]["unit"] is None
    assert owner_events[0]["payload"]["read"]["read_id"] == covert.json()["read_id"]
    assert await system.agency_events(OWNER_AGENCY) == other_before  # another agency's list saw nothing

    car_events = await system.events(officer)
    assert all(e["kind"] != "covert_hit" and "CVT901" not in str(e["payload"]) for e in car_events)
    # Another agency's supervisors do not see these covert hits; the car never does.
    refused = await system.ingest.get(f"/v1/agencies/{AGENCY}/events", headers=other_sup)
    assert refused.status_code == 403
    assert (await system.ingest.get(f"/v1/agencies/{AGENCY}/events", headers=officer.headers)).status_code == 403


async def test_hot_list_updates_are_announced_on_the_stream(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    bca_server.publish(extract([row("V700000010", "UPD001")]))
    version = await system.sync()

    async def notice_for(v: int) -> list[dict[str, object]]:
        return [
            e for e in await system.events(officer) if e["kind"] == "hotlist_update" and e["payload"]["version"] == v
        ]

    (first,) = await eventually(lambda: notice_for(version))
    assert first["payload"]["entries"] == 1 and first["payload"]["stale"] is False
    bca_server.publish(extract([row("V700000010", "UPD001"), row("V700000011", "UPD002")]))
    newer = await system.sync()
    assert newer > version
    (second,) = await eventually(lambda: notice_for(newer))
    assert second["payload"]["entries"] == 2 and second["id"] > first["id"]


async def test_a_hold_on_a_read_keeps_its_hit_through_hotlists_purge(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    """Hotlist's purge asks ingest, over HTTP, which reads a hold keeps; their hits stay with them."""
    import httpx

    from services.hotlist.ingest_client import IngestClient

    bca_server.publish(extract([row("V700000002", STOLEN)]))
    await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    hit_read = (await officer.post_read(officer.meta(plate=STOLEN, state="MN"))).json()
    plain_read = (await officer.post_read(officer.meta(plate="PZM337", state="MN"))).json()
    assert hit_read["hits"] and not plain_read["hits"]
    held = await system.ingest.post(
        "/v1/holds",
        json={"case_number": "CR-26-0200", "reason": "the stop that followed", "read_ids": [hit_read["read_id"]]},
        headers=system.auth("supervisor", agency=AGENCY),
    )
    assert held.status_code == 201, held.text

    async def token() -> str:
        return system.make_token(subject="svc-hotlist", roles=["service"])

    client = IngestClient("http://ingest", token, transport=httpx.ASGITransport(app=system.ingest_app))
    try:
        asked = [hit_read["read_id"], plain_read["read_id"], "not-a-read-id"]
        assert await client.held_reads(asked) == {hit_read["read_id"]}
    finally:
        await client.close()


async def test_a_hit_found_at_read_time_reaches_the_cars_stream_once(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    """A car that lost the HTTP answer still learns of the hit: it is on the unit's stream too, under the same hit id
    (the car dedupes by it); a retried read adds no second event."""
    bca_server.publish(extract([row("V700000020", "STR020")]))
    version = await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201

    async def announced() -> bool:  # the list's notice is out first, so the stream's next event is the hit
        return any(e["payload"].get("version") == version for e in await system.events(officer))

    await eventually(announced)
    meta = officer.meta(plate="STR020", state="MN")
    live = asyncio.create_task(
        officer.client.get(f"/v1/units/{officer.unit}/stream", params={"max_events": 1}, headers=officer.headers)
    )
    await asyncio.sleep(0.3)  # the stream is open (new events only) before the read is posted
    resp = await officer.post_read(meta)
    assert resp.status_code == 200, resp.text
    (hit,) = resp.json()["hits"]
    streamed = (await asyncio.wait_for(live, 10)).text
    assert "event: hit" in streamed and hit["hit_id"] in streamed
    assert (await officer.post_read(meta)).json()["duplicate"] is True
    events = [e for e in await system.events(officer) if e["kind"] == "hit"]
    assert [e["payload"]["hit_id"] for e in events] == [hit["hit_id"]]
    assert events[0]["payload"]["read"]["plate"] == "STR020"


async def test_metrics_are_served_and_parse_without_a_plate_in_them(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    bca_server.publish(extract([row("V700000030", "MET030")]))
    await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    assert (await officer.post_read(officer.meta(plate="MET030", state="MN"))).status_code == 200
    assert (await officer.post_read(officer.meta(), photo=jpeg(plate_image("PZM337")))).status_code == 200

    def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    scraped = {}
    for name, client in (("ingest", system.ingest), ("hotlist", system.hotlist)):
        resp = await client.get("/metrics")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        assert "MET030" not in resp.text and "PZM337" not in resp.text and officer.unit not in resp.text
        scraped[name] = samples(resp.text)
    ingest, hotlist = scraped["ingest"], scraped["hotlist"]
    assert ingest[("alpr_ingest_reads_total", (("outcome", "complete"),))] >= 2
    assert ("alpr_ingest_pending_reads", (("work", "match"),)) in ingest
    assert ("alpr_ingest_agent_spool_bytes", ()) in ingest and ("alpr_ingest_agent_quarantine_posts", ()) in ingest
    assert ingest[("alpr_audit_chain_head_seq", ())] >= 1
    assert ingest[("alpr_http_responses_total", (("service", "ingest"), ("status", "200")))] >= 2
    # Recognition read the photo (its apps share this process's registry): the latency histogram counted it.
    assert ingest[("alpr_recognition_seconds_count", ())] >= 1
    assert ("alpr_recognition_queue_depth", ()) in ingest and ("alpr_recognition_refused_total", ()) in ingest
    assert hotlist[("alpr_hotlist_hits_total", (("category", "stolen_vehicle"),))] >= 1
    assert hotlist[("alpr_hotlist_syncs_total", (("outcome", "loaded"),))] >= 1
    assert hotlist[("alpr_hotlist_version", ())] >= 1 and 0 <= hotlist[("alpr_hotlist_age_seconds", ())] < 60
    assert hotlist[("alpr_hotlist_sync_failures_in_row", ())] == 0

    # With a token set, /metrics asks for it.
    guarded = await system.another_ingest(metrics_token=SecretStr("scrape-secret"))
    assert (await guarded.get("/metrics")).status_code == 401
    ok = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert ok.status_code == 200 and "alpr_ingest_reads_total" in ok.text


async def test_the_two_readers_agreement_reaches_the_stored_read_and_the_hit(system: System, bca_server) -> None:  # type: ignore[no-untyped-def]
    """Recognition's `agreement` (both readers gave the reading) is on the read's answer, on the stored read (a retry
    answers what was stored), on the hit and on the hit the car's stream carries."""
    bca_server.publish(extract([row("W700000011", WANTED)]))
    await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    meta = officer.meta()
    first = await officer.post_read(meta, photo=jpeg(plate_image(WANTED, seed=11)))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["plate"], body["agreement"]) == (WANTED, "both")
    (hit,) = body["hits"]
    assert hit["agreement"] == "both"
    stored = (await officer.post_read(meta, photo=jpeg(plate_image(WANTED, seed=11)))).json()
    assert stored["duplicate"] is True and stored["agreement"] == "both"
    assert stored["hits"][0]["agreement"] == "both"

    async def hit_events() -> list[dict[str, Any]]:
        return [e for e in await system.events(officer) if e["kind"] == "hit"]

    (event,) = await eventually(hit_events)
    assert (event["payload"]["hit_id"], event["payload"]["agreement"]) == (hit["hit_id"], "both")

    # The car's own reading (no recognition): no agreement to report.
    car = await officer.post_read(officer.meta(plate="PZM337", state="MN"))
    assert car.status_code == 200 and car.json()["agreement"] is None

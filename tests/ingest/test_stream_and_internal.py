"""The cars' stream (late hits, never covert ones) and the internal endpoints of docs/contracts.md."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

from shared.acting_for import act_for_claims
from tests.ingest.conftest import AGENCY
from tests.ingest.test_reads import _rows


def _hit(read_id: str, hit_id: str, *, covert: bool = False) -> dict:
    return {
        "hit_id": hit_id,
        "read_id": read_id,
        "entry_id": "e-1",
        "list": "bca",
        "list_version": 7,
        "category": "stolen_vehicle",
        "category_label": "Stolen vehicle",
        "concerns": "vehicle",
        "owner_warning": None,
        "match": "exact",
        "read_plate": "ABC123",
        "entry_plate": "ABC123",
        "entry_state": "MN",
        "state_check": "match",
        "covert": covert,
        "priority": 1,
        "notice": "A hit alone is not probable cause: confirm the hit before acting.",
    }


def _service(make_token) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(subject='svc-hotlist', roles=['service'])}"}


async def test_late_hits_reach_the_unit_stream_and_covert_ones_never_do(ingest, officer_factory, make_token):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    read = (await officer.post_read(officer.meta(plate="ABC123"))).json()
    hits = [_hit(read["read_id"], f"h-{read['read_id']}"), _hit(read["read_id"], f"c-{read['read_id']}", covert=True)]
    hits.append(_hit("00000000-0000-0000-0000-000000000000", "h-unknown"))

    refused = await ingest.post("/v1/internal/hits", json={"hits": hits}, headers=officer.headers)
    assert refused.status_code == 403
    sent = await ingest.post("/v1/internal/hits", json={"hits": hits}, headers=_service(make_token))
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivered"] == 1 and sent.json()["covert_withheld"] == 1
    assert sent.json()["unknown_reads"] == ["00000000-0000-0000-0000-000000000000"]
    again = await ingest.post("/v1/internal/hits", json={"hits": hits[:1]}, headers=_service(make_token))
    assert again.json()["duplicates"] == 1 and again.json()["delivered"] == 0

    polled = await ingest.get(f"/v1/units/{officer.unit}/events", params={"since": 0}, headers=officer.headers)
    assert polled.status_code == 200
    unit_events = [e for e in polled.json()["events"] if e["unit"] == officer.unit]
    assert [e["payload"]["hit_id"] for e in unit_events] == [f"h-{read['read_id']}"]
    assert unit_events[0]["payload"]["read"]["plate"] == "ABC123"
    assert "not probable cause" in unit_events[0]["payload"]["notice"]

    replay = await ingest.get(
        # From just before the hit: a hot-list notice another test's sync left may come first otherwise.
        f"/v1/units/{officer.unit}/stream",
        params={"since": unit_events[0]["id"] - 1, "max_events": 1},
        headers=officer.headers,
    )
    assert replay.headers["content-type"].startswith("text/event-stream")
    assert "event: hit" in replay.text and f"h-{read['read_id']}" in replay.text

    # Live: the stream is open (new events only) when the next hit arrives.
    live = asyncio.create_task(
        ingest.get(f"/v1/units/{officer.unit}/stream", params={"max_events": 1}, headers=officer.headers)
    )
    await asyncio.sleep(0.3)  # let the stream open before the hit is sent
    second = _hit(read["read_id"], f"h2-{read['read_id']}")
    assert (await ingest.post("/v1/internal/hits", json={"hits": [second]}, headers=_service(make_token))).json()[
        "delivered"
    ] == 1
    text = (await asyncio.wait_for(live, 5)).text
    assert f"h2-{read['read_id']}" in text and f'h-{read["read_id"]}"' not in text

    stranger = officer_factory(ingest)()
    assert (await stranger.start()).status_code == 201
    denied = await ingest.get(f"/v1/units/{officer.unit}/events", headers=stranger.headers)
    assert denied.status_code == 403


async def test_batch_of_queued_reads_answers_each_item(ingest, officer_factory, settings):
    import json

    from tests.ingest.conftest import image_bytes

    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    ok = officer.meta(plate="QUE001")
    bad = {**officer.meta(plate="QUE002"), "vehicle_make": "Ford"}
    before_shift = officer.meta(plate="QUE003", captured_at=(datetime.now(UTC) - timedelta(hours=3)).isoformat())
    items = [ok, bad, before_shift, ok]
    files = [("items", (None, json.dumps(items), "application/json"))]
    files.append((f"photo:{ok['client_read_id']}", ("a.jpg", image_bytes(), "image/jpeg")))
    resp = await ingest.post("/v1/reads/batch", files=files, headers=officer.headers)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["status_code"] for r in results] == [200, 422, 409, 200]
    assert "vehicle_make" in json.dumps(results[1]["detail"])
    assert results[0]["result"]["read_id"] == results[3]["result"]["read_id"]
    assert sorted([results[0]["result"]["duplicate"], results[3]["result"]["duplicate"]]) == [False, True]
    rows = await _rows(settings, "SELECT image_key FROM ingest.reads WHERE client_read_id = :c", c=ok["client_read_id"])
    assert len(rows) == 1 and rows[0].image_key

    too_many = [officer.meta(plate="QUE004") for _ in range(settings.ingest_batch_max_items + 1)]
    big = await ingest.post(
        "/v1/reads/batch", files=[("items", (None, json.dumps(too_many), "application/json"))], headers=officer.headers
    )
    assert big.status_code == 413


async def test_search_by_wildcard_misread_area_window_and_cursor(ingest, officer_factory, make_token, settings):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    prefix = "".join(random.choices("ACEFHJKMNPRTUVWXY", k=3))
    now = datetime.now(UTC)
    near, far = (45.0322, -93.3602), (44.9778, -93.2650)  # Crystal, downtown Minneapolis (~8.5 km)
    reads = [
        (f"{prefix}123", near, now - timedelta(minutes=30)),
        (f"{prefix}1Z3", near, now - timedelta(minutes=20)),  # a misread of the same plate
        (f"{prefix}999", far, now - timedelta(minutes=10)),
    ]
    for plate, (lat, lon), at in reads:
        resp = await officer.post_read(officer.meta(plate=plate, lat=lat, lon=lon, captured_at=at.isoformat()))
        assert resp.status_code == 200, resp.text

    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(minutes=1)).isoformat()}
    svc = _service(make_token)

    def granted(body):  # type: ignore[no-untyped-def]
        # What access signs for a query it checked against a grant (shared/acting_for.py).
        return {"Authorization": f"Bearer {make_token(subject='svc-access', **act_for_claims('g-1', AGENCY, body))}"}

    async def search(**body):  # type: ignore[no-untyped-def]
        full = {**window, "agency": AGENCY, **body}
        resp = await ingest.post("/v1/internal/reads/search", json=full, headers=granted(full))
        assert resp.status_code == 200, resp.text
        return resp.json()

    assert [r["plate"] for r in (await search(plates=[f"{prefix}*"]))["reads"]] == [p for p, _, _ in reads]
    assert [r["plate"] for r in (await search(plates=[f"{prefix}?23"]))["reads"]] == [f"{prefix}123"]
    tolerant = await search(plates=[f"{prefix}123"], misread_tolerant=True)
    assert [r["plate"] for r in tolerant["reads"]] == [f"{prefix}123", f"{prefix}1Z3"]
    area = await search(plates=[f"{prefix}*"], area={"lat": far[0], "lon": far[1], "radius_m": 500})
    assert [r["plate"] for r in area["reads"]] == [f"{prefix}999"]

    seen, cursor = [], None
    while True:
        page = await search(plates=[f"{prefix}*"], limit=1, cursor=cursor)
        seen += [r["read_id"] for r in page["reads"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 3 and len(set(seen)) == 3

    wild = {**window, "agency": AGENCY, "plates": ["*"]}
    bad = await ingest.post("/v1/internal/reads/search", json=wild, headers=granted(wild))
    assert bad.status_code == 422
    officer_try = await ingest.post(
        "/v1/internal/reads/search", json={**window, "plates": [f"{prefix}*"]}, headers=officer.headers
    )
    assert officer_try.status_code == 403

    # The past-read lookup (a location history without a request) is gone: stored reads leave through a grant.
    gone = await ingest.post(
        "/v1/internal/reads/lookup",
        json={"plates": [f"{prefix}123"], "since": (now - timedelta(hours=1)).isoformat()},
        headers=svc,
    )
    assert gone.status_code in (404, 405)

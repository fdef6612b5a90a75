"""A car's open stream ends when access to it ends: its shift ends (the next shift's hits never reach it, even
before the stream notices) or its token expires; a reconnect never replays an earlier shift's hits."""

import asyncio

from services.ingest.main import create_app
from tests.ingest.conftest import ingest_settings
from tests.ingest.test_stream_and_internal import _hit, _service
from tests.support.apps import running


async def test_a_stream_ends_with_its_shift_and_never_carries_the_next_shifts_hit(ingest, officer_factory, make_token):
    x = officer_factory(ingest)()
    assert (await x.start()).status_code == 201
    x_read = (await x.post_read(x.meta(plate="ABC123"))).json()
    # From the first event (the car's own shift's only), so the hit below reaches the stream however late the
    # stream's request is served on a loaded machine; it must still be open before the shift ends.
    x_stream = asyncio.create_task(
        ingest.get(f"/v1/units/{x.unit}/stream", headers={**x.headers, "Last-Event-ID": "0"})
    )
    await asyncio.sleep(0.5)
    x_hit = _hit(x_read["read_id"], f"x-{x_read['read_id']}")
    assert (await ingest.post("/v1/internal/hits", json={"hits": [x_hit]}, headers=_service(make_token))).json()[
        "delivered"
    ] == 1

    # X logs out and Y takes the car at once, well inside the stream's re-check period (2 s): Y's hit must not
    # reach X's stream in the meantime.
    assert (await ingest.post(f"/v1/shifts/{x.shift_id}/end", headers=x.headers)).status_code == 200
    y = officer_factory(ingest)()
    y.unit = x.unit
    assert (await y.start()).status_code == 201
    y_read = (await y.post_read(y.meta(plate="XYZ789"))).json()
    y_hit = _hit(y_read["read_id"], f"y-{y_read['read_id']}")
    assert (await ingest.post("/v1/internal/hits", json={"hits": [y_hit]}, headers=_service(make_token))).json()[
        "delivered"
    ] == 1

    text = (await asyncio.wait_for(x_stream, 6)).text
    assert x_hit["hit_id"] in text
    assert y_hit["hit_id"] not in text and "XYZ789" not in text
    assert text.rstrip().endswith("}") and "event: end" in text and "shift ended" in text

    # Y's car reconnecting from the very first event replays its own shift's hit, never X's.
    y_stream = asyncio.create_task(
        ingest.get(f"/v1/units/{y.unit}/stream", headers={**y.headers, "Last-Event-ID": "0"})
    )
    polled = await ingest.get(f"/v1/units/{y.unit}/events", params={"since": 0}, headers=y.headers)
    assert [e["payload"]["hit_id"] for e in polled.json()["events"] if e["kind"] == "hit"] == [y_hit["hit_id"]]
    await asyncio.sleep(0.3)
    assert (await ingest.post(f"/v1/shifts/{y.shift_id}/end", headers=y.headers)).status_code == 200
    replayed = (await asyncio.wait_for(y_stream, 6)).text
    assert y_hit["hit_id"] in replayed and x_hit["hit_id"] not in replayed and "event: end" in replayed


async def test_a_stream_ends_when_its_token_expires(settings, officer_factory):
    # A second of clock-skew leeway (30 s by default), past which a new request is refused too.
    app = create_app(ingest_settings(settings, jwt_leeway_s=1, revocation_refresh_s=0.5), run_worker=False)
    async with running(app) as ingest:
        officer = officer_factory(ingest)(ttl_s=2)
        assert (await officer.start()).status_code == 201
        stream = ingest.get(f"/v1/units/{officer.unit}/stream", headers=officer.headers)
        resp = await asyncio.wait_for(stream, 8)
        assert resp.status_code == 200
        assert "event: end" in resp.text and "token expired" in resp.text
        again = await ingest.get(f"/v1/units/{officer.unit}/stream", headers=officer.headers)
        assert again.status_code == 401

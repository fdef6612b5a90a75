"""Shifts: who may put a unit online, and what ending or expiry does to its reads."""

import asyncio
from datetime import UTC, datetime, timedelta

from tests.ingest.conftest import AGENCY, image_bytes


async def test_shift_refused_for_wrong_badge_lapsed_training_or_non_officer(ingest, officer_factory, make_token):
    make = officer_factory(ingest)
    officer = make()
    wrong = await ingest.post(
        "/v1/shifts", json={"badge": "99999x", "unit": officer.unit, "cameras": []}, headers=officer.headers
    )
    assert wrong.status_code == 403
    assert "badge" in wrong.json()["detail"]

    lapsed = make(trained_for_s=-3600)
    resp = await lapsed.start()
    assert resp.status_code == 403
    assert "training expired" in resp.json()["detail"]

    untrained = make(trained_for_s=None)
    resp = await untrained.start()
    assert resp.status_code == 403
    assert "no current ALPR training" in resp.json()["detail"]

    clerk = make_token(subject="clerk", roles=["auditor"], badge="1", agency=AGENCY, trained_until=2_000_000_000)
    resp = await ingest.post(
        "/v1/shifts", json={"badge": "1", "unit": "car-x", "cameras": []}, headers={"Authorization": f"Bearer {clerk}"}
    )
    assert resp.status_code == 403


async def test_ending_a_shift_takes_the_unit_offline_and_keeps_the_interval(ingest, officer_factory, make_token):
    officer = officer_factory(ingest)()
    started = await officer.start()
    assert started.status_code == 201, started.text
    assert started.json()["online"] is True

    other = officer_factory(ingest)()
    other.unit = officer.unit
    taken = await other.start()
    assert taken.status_code == 409

    assert (await officer.post_read(officer.meta(plate="ABC123"))).status_code == 200

    ended = await ingest.post(f"/v1/shifts/{officer.shift_id}/end", headers=officer.headers)
    assert ended.status_code == 200
    assert ended.json()["online"] is False and ended.json()["end_reason"] == "logout"

    refused = await officer.post_read(officer.meta(plate="ABC124"), image_bytes())
    assert refused.status_code == 409
    assert "offline" in refused.json()["detail"]

    supervisor = make_token(subject="sup", roles=["supervisor"], agency=AGENCY)
    listed = await ingest.get(
        "/v1/shifts", params={"unit": officer.unit}, headers={"Authorization": f"Bearer {supervisor}"}
    )
    assert listed.status_code == 200
    (interval,) = listed.json()["shifts"]
    assert interval["started_at"] < interval["ended_at"]
    assert interval["badge"] == officer.badge


async def test_shift_expires_when_training_lapses(ingest, officer_factory, make_token):
    officer = officer_factory(ingest)(trained_for_s=2.0)
    started = await officer.start()
    assert started.status_code == 201, started.text
    expires = datetime.fromisoformat(started.json()["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=2)  # the training's end, not the 12-hour length
    # The clock must pass the expiry: there is nothing to await but time.
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    refused = await officer.post_read(officer.meta(plate="XYZ789"))
    assert refused.status_code == 403 and "training expired" in refused.json()["detail"]  # no data door opens
    supervisor = {"Authorization": f"Bearer {make_token(subject='sup', roles=['supervisor'], agency=AGENCY)}"}
    shift = await ingest.get(f"/v1/shifts/{officer.shift_id}", headers=supervisor)
    assert shift.json()["online"] is False

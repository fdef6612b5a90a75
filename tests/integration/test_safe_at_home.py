"""Safe at Home (Minn. Stat. 13.824 subd. 3(c)): when a participant's request is recorded, the reads of their plate
and the hits raised on them are destroyed, but those a hold keeps (active criminal investigative data); from then
on a read of the plate is destroyed at the time of collection and no alert is issued on it, even when the plate is
on the hot list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.hotlist.bca import extract, row
from tests.ingest.conftest import AGENCY
from tests.integration.conftest import System
from tests.recognition.render import jpeg, plate_image
from tests.support.s3 import BUCKET

PROTECTED, STOLEN, WAITING = "SAH7731", "ABC1234", "SAH8842"


async def _scalar(system: System, sql: str, **params: Any) -> Any:
    engine = create_async_engine(system.settings.database_url or "")
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(sql), params)
    finally:
        await engine.dispose()


async def test_a_participants_reads_and_hits_are_destroyed_and_no_alert_is_raised(  # type: ignore[no-untyped-def]
    system: System, bca_server, s3_server
) -> None:
    # The list carries the plate, so only the Safe at Home rule keeps a hit from being raised.
    bca_server.publish(extract([row("V700000031", PROTECTED), row("V700000032", STOLEN)]))
    await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    supervisor = system.auth("supervisor", agency=AGENCY)

    # Before the request: two reads of the plate, each with its hit; a case holds the first read and its hit.
    before = [
        (await officer.post_read(officer.meta(plate=PROTECTED, state="MN"), photo=jpeg(plate_image("PZM337")))).json()
        for _ in range(2)
    ]
    assert all(len(r["hits"]) == 1 for r in before)
    kept, gone = before
    case = {"case_number": "CR-26-0300", "reason": "stolen-vehicle case"}
    held = await system.ingest.post("/v1/holds", json={**case, "read_ids": [kept["read_id"]]}, headers=supervisor)
    assert held.status_code == 201, held.text
    hit_held = await system.hotlist.post(
        "/v1/hit-holds", json={**case, "hit_ids": [kept["hits"][0]["hit_id"]]}, headers=supervisor
    )
    assert hit_held.status_code == 201, hit_held.text

    filed = await system.ingest.post(
        "/v1/subject-requests/safe-at-home",
        json={"plate": "sah-7731", "request_reference": "SAH-2026-9", "received_on": datetime.now(UTC).isoformat()},
        headers=supervisor,
    )
    # The plate is on the hot list and under a hold: a second supervisor confirms (two-person rule), but the plate
    # is protected on receipt: its unheld read and hit are destroyed now, only the held ones wait.
    assert filed.status_code == 202 and filed.json()["status"] == "awaiting_confirmation", filed.text
    assert (filed.json()["reads_destroyed"], filed.json()["hits_destroyed"]) == (1, 1)
    reads_sql = "SELECT count(*) FROM ingest.reads WHERE id = CAST(:r AS uuid)"
    hits_sql = "SELECT count(*) FROM hotlist.hits WHERE read_id = :r"
    assert await _scalar(system, reads_sql, r=kept["read_id"]) == 1
    assert await _scalar(system, hits_sql, r=kept["read_id"]) == 1
    assert await _scalar(system, reads_sql, r=gone["read_id"]) == 0
    assert await _scalar(system, hits_sql, r=gone["read_id"]) == 0

    # While it waits, a new read of the plate is not stored and raises no alert.
    waiting = await officer.post_read(officer.meta(plate=PROTECTED, state="MN"), photo=jpeg(plate_image("PZM337")))
    assert waiting.status_code == 200 and waiting.json()["hits"] == [], waiting.text
    assert await _scalar(system, reads_sql, r=waiting.json()["read_id"]) == 0
    assert await _scalar(system, hits_sql, r=waiting.json()["read_id"]) == 0

    confirm = f"/v1/subject-requests/safe-at-home/{filed.json()['request_id']}/confirm"
    assert (await system.ingest.post(confirm, headers=supervisor)).status_code == 403
    filed = await system.ingest.post(confirm, headers=system.auth("supervisor", agency=AGENCY, subject="sup-2"))
    assert filed.status_code == 200 and filed.json()["status"] == "protected", filed.text
    assert (filed.json()["reads_destroyed"], filed.json()["hits_destroyed"]) == (0, 0)
    assert await _scalar(system, reads_sql, r=kept["read_id"]) == 1

    # After the request: a read of the plate is not stored, its photo is deleted, and no hit is raised.
    resp = await officer.post_read(officer.meta(plate=PROTECTED, state="MN"), photo=jpeg(plate_image("PZM337")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # The car's answer looks like any read without a hit: it says nothing about why.
    assert (body["hits"], body["notice"], body["status"]) == ([], None, "complete")
    assert body["image_key"] is None and body["crop_key"] is None
    assert await _scalar(system, reads_sql, r=body["read_id"]) == 0
    assert await _scalar(system, hits_sql, r=body["read_id"]) == 0
    objects = [o.object_name for o in s3_server.client().list_objects(BUCKET, prefix="reads/", recursive=True)]
    assert not any(body["read_id"] in name for name in objects)

    # Another plate on the list still raises its alert from the same car.
    other = await officer.post_read(officer.meta(plate=STOLEN, state="MN"), photo=jpeg(plate_image("PZM337")))
    assert other.status_code == 200, other.text
    assert [h["entry_id"] for h in other.json()["hits"]] == ["V700000032"]


async def test_a_request_waiting_for_its_second_supervisor_is_listed_per_agency_and_overdue_warned(  # type: ignore[no-untyped-def]
    system: System,
) -> None:
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    supervisor = system.auth("supervisor", agency=AGENCY)
    read = (await officer.post_read(officer.meta(plate=WAITING, state="MN"), photo=jpeg(plate_image("PZM337")))).json()
    held = await system.ingest.post(
        "/v1/holds",
        json={"case_number": "CR-26-0301", "reason": "case", "read_ids": [read["read_id"]]},
        headers=supervisor,
    )
    assert held.status_code == 201, held.text
    filed = await system.ingest.post(
        "/v1/subject-requests/safe-at-home",
        json={"plate": WAITING, "request_reference": "SAH-2026-10", "received_on": datetime.now(UTC).isoformat()},
        headers=supervisor,
    )
    assert filed.status_code == 202, filed.text
    request_id = filed.json()["request_id"]
    listed = await system.ingest.get("/v1/subject-requests/safe-at-home/pending", headers=supervisor)
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()
    assert (entry["request_id"], entry["request_reference"], entry["overdue"]) == (request_id, "SAH-2026-10", False)
    assert WAITING not in listed.text  # the plate is private: the reference names it
    # Another agency's supervisors do not see it; an officer may not list them.
    other = await system.ingest.get(
        "/v1/subject-requests/safe-at-home/pending", headers=system.auth("supervisor", agency="MN0000000")
    )
    assert other.status_code == 200 and other.json() == []
    by_officer = await system.ingest.get("/v1/subject-requests/safe-at-home/pending", headers=system.auth("officer"))
    assert by_officer.status_code == 403
    assert "safe_at_home_overdue" not in (await system.ingest.get("/readyz")).json().get("warnings", {})

    # Past the deadline (ALPR_INGEST_SAFE_AT_HOME_CONFIRM_DAYS), /readyz warns and the metric counts it.
    engine = create_async_engine(system.settings.database_url or "")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE ingest.protected_plates SET recorded_at = now() - interval '4 days' WHERE id = :i"),
                {"i": request_id},
            )
    finally:
        await engine.dispose()
    listed = await system.ingest.get("/v1/subject-requests/safe-at-home/pending", headers=supervisor)
    assert listed.json()[0]["overdue"] is True
    ready = (await system.ingest.get("/readyz")).json()
    assert ready["status"] == "degraded" and "safe_at_home_overdue" in ready["warnings"], ready
    metrics = (await system.ingest.get("/metrics")).text
    assert "alpr_ingest_safe_at_home_overdue 1.0" in metrics
    # Confirmed, late: the warning goes (and no other test's /readyz inherits it).
    confirm = f"/v1/subject-requests/safe-at-home/{request_id}/confirm"
    done = await system.ingest.post(confirm, headers=system.auth("supervisor", agency=AGENCY, subject="sup-late"))
    assert done.status_code == 200, done.text
    assert "safe_at_home_overdue" not in (await system.ingest.get("/readyz")).json().get("warnings", {})

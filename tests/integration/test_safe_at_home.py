"""Safe at Home (Minn. Stat. 13.824 subd. 3(c)): once a participant's request is recorded, a read of their plate is
destroyed at the time of collection and no alert is issued on it, even when the plate is on the hot list."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.hotlist.bca import extract, row
from tests.ingest.conftest import AGENCY
from tests.integration.conftest import System
from tests.recognition.render import jpeg, plate_image
from tests.support.s3 import BUCKET

PROTECTED, STOLEN = "SAH7731", "ABC1234"


async def test_a_participants_read_is_destroyed_at_collection_and_raises_no_alert(  # type: ignore[no-untyped-def]
    system: System, bca_server, s3_server
) -> None:
    # The list carries the plate, so only the Safe at Home rule keeps a hit from being raised.
    bca_server.publish(extract([row("V700000031", PROTECTED), row("V700000032", STOLEN)]))
    await system.sync()
    officer = system.officer()
    assert (await officer.start()).status_code == 201
    filed = await system.ingest.post(
        "/v1/subject-requests/safe-at-home",
        json={"plate": "sah-7731", "request_reference": "SAH-2026-9", "received_on": datetime.now(UTC).isoformat()},
        headers=system.auth("supervisor", agency=AGENCY),
    )
    assert filed.status_code == 201, filed.text

    resp = await officer.post_read(officer.meta(plate=PROTECTED, state="MN"), photo=jpeg(plate_image("PZM337")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # The car's answer looks like any read without a hit: it says nothing about why.
    assert (body["hits"], body["notice"], body["status"]) == ([], None, "complete")
    assert body["image_key"] is None and body["crop_key"] is None

    engine = create_async_engine(system.settings.database_url or "")
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(
                text("SELECT count(*) FROM ingest.reads WHERE plate = :p OR car_plate = :p"), {"p": PROTECTED}
            )
            hits = await conn.scalar(
                text("SELECT count(*) FROM hotlist.hits WHERE read_id = :r"), {"r": body["read_id"]}
            )
    finally:
        await engine.dispose()
    assert stored == 0 and hits == 0
    objects = [o.object_name for o in s3_server.client().list_objects(BUCKET, prefix="reads/", recursive=True)]
    assert not any(body["read_id"] in name for name in objects)

    # Another plate on the list still raises its alert from the same car.
    other = await officer.post_read(officer.meta(plate=STOLEN, state="MN"), photo=jpeg(plate_image("PZM337")))
    assert other.status_code == 200, other.text
    assert [h["entry_id"] for h in other.json()["hits"]] == ["V700000032"]

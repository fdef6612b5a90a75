"""Reads: only the statute's fields, real images, stored once, in day partitions and day-prefixed objects."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from tests.ingest.conftest import days_ago, image_bytes
from tests.support.s3 import BUCKET


async def _rows(settings: Settings, sql: str, **params):
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


def _objects(s3_server, prefix: str) -> list[str]:
    return [o.object_name for o in s3_server.client().list_objects(BUCKET, prefix=prefix, recursive=True)]


async def test_read_with_photo_and_crop_is_stored_once_under_its_day(ingest, officer_factory, settings, s3_server):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    captured = datetime.now(UTC) - timedelta(days=2, minutes=5)
    meta = officer.meta(plate="abc-123", state="MN", plate_confidence=0.91, captured_at=captured.isoformat())
    first = await officer.post_read(meta, image_bytes(noise=40), image_bytes("PNG", (120, 40)))
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["plate"] == "ABC123" and body["status"] == "complete" and body["duplicate"] is False
    day = f"reads/{captured:%Y/%m/%d}/"
    assert body["image_key"].startswith(day) and body["image_key"].endswith(".jpg")
    assert body["crop_key"].startswith(day) and body["crop_key"].endswith(".png")
    objects = _objects(s3_server, day)
    assert body["image_key"] in objects and body["crop_key"] in objects

    retry = await officer.post_read(meta, image_bytes(noise=60), image_bytes("PNG", (120, 40)))
    assert retry.status_code == 200
    assert retry.json()["read_id"] == body["read_id"] and retry.json()["duplicate"] is True
    assert retry.json()["image_key"] == body["image_key"]
    assert sorted(_objects(s3_server, day)) == sorted(objects)

    rows = await _rows(
        settings,
        "SELECT tableoid::regclass::text AS part, plate, confusion_key, lat FROM ingest.reads "
        "WHERE client_read_id = :c",
        c=meta["client_read_id"],
    )
    assert len(rows) == 1
    assert rows[0].part == f"ingest.reads_{captured:%Y%m%d}"
    assert rows[0].plate == "ABC123" and rows[0].confusion_key == "A8C123"

    reused = await officer.post_read({**meta, "captured_at": (captured + timedelta(hours=1)).isoformat()})
    assert reused.status_code == 409


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"vehicle_color": "red"}, "vehicle_color"),  # not a 13.824 subd. 2(a) field
        ({"lat": 91.0}, "lat"),
        ({"lon": -181.0}, "lon"),
        ({"captured_at": "2026-11-25T10:00:00"}, "captured_at"),  # no zone
        ({"plate": "!!"}, "plate"),
    ],
)
async def test_metadata_outside_the_statute_or_ranges_is_422(ingest, officer_factory, change, where):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    resp = await officer.post_read(officer.meta(**{"plate": "ABC123", **change}))
    assert resp.status_code == 422
    assert where in json.dumps(resp.json()["detail"])


async def test_bad_images_times_and_sizes_are_refused(ingest, officer_factory, settings, s3_server):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    before = len(_objects(s3_server, "reads/"))

    not_image = await officer.post_read(officer.meta(), b"GIF89a" + b"\x00" * 500)
    assert not_image.status_code == 422 and "photo" in not_image.json()["detail"]
    truncated = await officer.post_read(officer.meta(), image_bytes(noise=40)[:3000])
    assert truncated.status_code == 422
    bad_crop = await officer.post_read(officer.meta(), image_bytes(), b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert bad_crop.status_code == 422 and "crop" in bad_crop.json()["detail"]

    future = datetime.now(UTC) + timedelta(seconds=settings.ingest_clock_skew_s + 600)
    ahead = await officer.post_read(officer.meta(plate="ABC123", captured_at=future.isoformat()))
    assert ahead.status_code == 422 and "future" in ahead.json()["detail"]
    old = await officer.post_read(officer.meta(plate="ABC123", captured_at=days_ago(90)))
    assert old.status_code == 422 and "retention" in old.json()["detail"]

    nothing = await officer.post_read(officer.meta())
    assert nothing.status_code == 422 and "photo or" in nothing.json()["detail"]

    big = await officer.post_read(officer.meta(), b"\xff\xd8" + b"\x00" * 300_000)
    assert big.status_code == 413
    assert len(_objects(s3_server, "reads/")) == before


async def test_read_for_another_officers_unit_is_403(ingest, officer_factory):
    make = officer_factory(ingest)
    owner, intruder = make(), make()
    assert (await owner.start()).status_code == 201
    resp = await intruder.post_read(owner.meta(plate="ABC123"))
    assert resp.status_code == 403


async def test_metadata_only_json_read(ingest, officer_factory):
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    resp = await ingest.post("/v1/reads", json=officer.meta(plate="MN 4321"), headers=officer.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["plate"] == "MN4321" and resp.json()["image_key"] is None


async def test_heading_and_speed_are_accepted_and_never_stored(ingest, officer_factory, settings):
    """Minn. Stat. 13.824 subd. 2(a): plate, date, time, location, pictures; a car's heading and speed are not."""
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    meta = officer.meta(plate="HS 1234", heading=271.0, speed=30.0)
    resp = await ingest.post("/v1/reads", json=meta, headers=officer.headers)
    assert resp.status_code == 200, resp.text
    rows = await _rows(
        settings, "SELECT heading, speed, lat FROM ingest.reads WHERE client_read_id = :c", c=meta["client_read_id"]
    )
    assert [(r.heading, r.speed, r.lat) for r in rows] == [(None, None, meta["lat"])]

"""The group commit's one statement (shift check and INSERT together): in one batch, a new read is stored with its
hits, a retry of a stored read and a read sent twice are answered with the stored row, and a read of a shift that
ended is refused, all at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.ingest.writer import ReadWriter, WriteOutcome, batch_engine
from shared.errors import Conflict
from shared.settings import Settings
from tests.ingest.agents_support import AGENCY, rows


async def _shift(settings: Settings, unit: str, *, ended: bool) -> uuid.UUID:
    shift_id = uuid.uuid4()
    now = datetime.now(UTC)
    engine = create_async_engine(settings.database_url or "")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, expires_at, "
                    "ended_at, end_reason) VALUES (:id, :unit, :agency, '77', 'officer-77', '{}', :start, :exp, "
                    ":ended, :reason)"
                ),
                {
                    "id": shift_id,
                    "unit": unit,
                    "agency": AGENCY,
                    "start": now - timedelta(hours=1),
                    "exp": now + timedelta(hours=1),
                    "ended": now - timedelta(minutes=1) if ended else None,
                    "reason": "logout" if ended else None,
                },
            )
    finally:
        await engine.dispose()
    return shift_id


async def test_one_batch_stores_new_reads_answers_retries_and_refuses_an_ended_shift(settings: Settings) -> None:
    now = datetime.now(UTC)
    unit, gone_unit = f"gc-{uuid.uuid4().hex[:8]}", f"gc-{uuid.uuid4().hex[:8]}"
    open_shift = await _shift(settings, unit, ended=False)
    ended_shift = await _shift(settings, gone_unit, ended=True)

    def row(n: int, shift: uuid.UUID, the_unit: str = unit, hits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(), "captured_at": now - timedelta(seconds=n), "received_at": now, "agency": AGENCY,
            "unit": the_unit, "shift_id": shift, "camera": "front", "client_read_id": f"gc-{the_unit}-{n}",
            "lat": 45.0, "lon": -93.0, "heading": None, "speed": None, "plate": f"GC{n:04d}",
            "confusion_key": None, "plate_confidence": 0.9, "state": "MN", "plate_source": "car",
            "car_plate": None, "image_key": f"reads/x/{n}.jpg", "crop_key": None, "recognition_pending": False,
            "match_pending": False, "attempts": 0, "last_error": None, "list_version": 7, "hits": hits or [],
        }  # fmt: skip

    writer = ReadWriter(batch_engine(settings), max_batch=64)
    writer.start()
    try:
        await writer.ensure_days({now.date(), (now - timedelta(seconds=10)).date()})
        stored_before = row(1, open_shift)
        first = await writer.submit(stored_before, require_active=True)
        assert first.inserted

        hit = {"hit_id": "h-1", "list_name": "stolen", "entry_id": "E1", "covert": False}
        fresh = row(2, open_shift, hits=[hit])
        retry = {**stored_before, "received_at": now + timedelta(seconds=1)}
        twice = row(3, open_shift)
        ended = row(4, ended_shift, gone_unit)
        queued = row(5, ended_shift, gone_unit)  # a queued upload: its shift may have ended since
        results = await asyncio.gather(
            writer.submit(fresh, require_active=True),
            writer.submit(retry, require_active=True),
            writer.submit(twice, require_active=True),
            writer.submit(dict(twice), require_active=True),
            writer.submit(ended, require_active=True),
            writer.submit(queued, require_active=False),
            return_exceptions=True,
        )
    finally:
        await writer.stop()
        await writer.engine.dispose()

    new, again, once, second, refused, kept = results
    assert isinstance(new, WriteOutcome) and new.inserted
    assert isinstance(again, WriteOutcome) and not again.inserted and again.row["id"] == stored_before["id"]
    assert isinstance(once, WriteOutcome) and once.inserted
    assert isinstance(second, WriteOutcome) and not second.inserted and second.row["id"] == twice["id"]
    assert isinstance(refused, Conflict)
    assert isinstance(kept, WriteOutcome) and kept.inserted

    stored = await rows(
        settings,
        "SELECT client_read_id, hits, list_version, image_key FROM ingest.reads WHERE unit = ANY(:u)",
        u=[unit, gone_unit],
    )
    expected = [f"gc-{unit}-1", f"gc-{unit}-2", f"gc-{unit}-3", f"gc-{gone_unit}-5"]
    assert sorted(r.client_read_id for r in stored) == sorted(expected)
    by_id = {r.client_read_id: r for r in stored}
    assert by_id[f"gc-{unit}-2"].hits == [hit]
    assert by_id[f"gc-{unit}-2"].list_version == 7 and by_id[f"gc-{unit}-2"].image_key == "reads/x/2.jpg"


def _batch_items(metrics: str, batcher: str) -> tuple[float, float]:
    """(reads, batches) so far of one batcher, from ingest's /metrics."""
    found = {
        s.name: s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if family.name == "alpr_ingest_batch_items" and s.labels.get("batcher") == batcher
    }
    return found["alpr_ingest_batch_items_sum"], found["alpr_ingest_batch_items_count"]


async def test_metrics_count_the_reads_each_batch_held(ingest, officer_factory) -> None:  # type: ignore[no-untyped-def]
    """`alpr_ingest_batch_items` says how full the batches run (a read's CPU falls as they fill; docs/scaling.md):
    eight reads posted at once are eight reads in the lookup's and the group commit's batches, in 1 to 8 batches."""
    officer = officer_factory(ingest)()
    assert (await officer.start()).status_code == 201
    before = (await ingest.get("/metrics")).text
    answers = await asyncio.gather(*(officer.post_read(officer.meta(plate=f"BI{n:04d}")) for n in range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    after = (await ingest.get("/metrics")).text
    for batcher in ("existing-reads", "read-writer"):
        (reads0, batches0), (reads1, batches1) = _batch_items(before, batcher), _batch_items(after, batcher)
        assert reads1 - reads0 == 8, batcher
        assert 1 <= batches1 - batches0 <= 8, batcher

"""The OCR pool under overload (issue 18): a photo whose caller went away (it timed out) is not read, and its place
in the queue is given back only once no thread can still be reading it."""

from __future__ import annotations

import asyncio

import pytest

from services.recognition.service import OcrPool
from shared.errors import Unavailable
from shared.logs import configure_logging
from tests.recognition.render import jpeg, plate_image


async def test_a_photo_whose_caller_went_away_is_not_read_and_frees_its_place() -> None:
    configure_logging("WARNING")  # as the service's lifespan does (to this test's stderr)
    pool = OcrPool(workers=1, queue=1, threads=1)
    await pool.start()
    try:
        photo = jpeg(plate_image("KXR482", size=(960, 640)))
        loop = asyncio.get_running_loop()
        waiting = loop.create_future()  # a caller that stays
        first = asyncio.create_task(pool.recognize_for(photo, lambda: waiting))  # takes the only OCR thread
        await asyncio.sleep(0)
        gone = loop.create_future()
        gone.set_result(None)  # a caller that has already gone
        assert await pool.recognize_for(photo, lambda: gone) is None
        assert pool.in_flight == 2  # its place is held while it still waits behind the first photo

        # Full: refused before its caller's watcher is made (a coroutine made and never awaited warns).
        watchers: list[str] = []
        with pytest.raises(Unavailable):
            await pool.recognize_for(photo, lambda: watchers.append("made") or waiting)  # type: ignore[func-returns-value]
        assert watchers == []

        read = await first
        assert read is not None and read.plates[0].plate == "KXR482"
        for _ in range(100):
            if pool.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.in_flight == 0 and pool.abandoned == 1  # skipped by the thread, never read
    finally:
        pool.close()

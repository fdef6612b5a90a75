"""Wakes the cars' streams when this process writes an event. Events written by another process (a second uvicorn
worker) are found by the stream's periodic check (`ingest_stream_poll_s`), so the table stays the one source."""

from __future__ import annotations

import asyncio


class StreamHub:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass

    def close(self) -> None:
        self.closed = True
        self.notify()

"""Wakes the cars' streams when this process writes an event. Events written by another process (a second uvicorn
worker) are found by the stream's periodic check (`ingest_stream_poll_s`), so the table stays the one source."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType


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


def close_on_exit_signal(hub: StreamHub) -> Callable[[], None]:
    """Close the streams as soon as SIGINT or SIGTERM arrives. uvicorn waits for open responses before it runs the
    app's shutdown, and a car's stream never ends on its own: without this, Ctrl-C waited out the whole graceful
    timeout and then cancelled the streams with a traceback. The signal handler uvicorn installed still runs.
    Returns the function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only (tests running an app in a thread)
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.close)
        before = previous[sig]
        if callable(before):
            before(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return restore

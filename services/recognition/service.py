"""OCR off the event loop: a pool of worker threads sized to the cores, behind a bounded queue.

ONNX Runtime and OpenCV release the GIL, so threads use every core while sharing one copy of the models.
A request beyond workers + queue is refused at once (503 + Retry-After) rather than waiting without limit.
A request whose caller has gone (it timed out) gives up its place: its photo is not read if no thread has started
on it yet, and its place in the queue is freed when the thread is done with it, not before.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

from services.recognition import metrics
from services.recognition.engine import OcrEngine, get_engine
from services.recognition.pipeline import Options, Recognition, recognize_bytes
from shared.errors import Unavailable

log = structlog.get_logger(__name__)


class OcrPool:
    def __init__(
        self,
        workers: int | None = None,
        queue: int = 8,
        engine: OcrEngine | None = None,
        options: Options | None = None,
        threads: int | None = None,
        spin: bool = False,
    ) -> None:
        self.options = options or Options()
        self.threads = threads  # ONNX Runtime threads per model run (unset: one per core)
        self.spin = spin
        self.abandoned = 0  # photos not read because their caller had gone
        self.workers = workers or os.cpu_count() or 1
        self.capacity = self.workers + queue
        self.in_flight = 0
        metrics.CAPACITY.set(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ocr")
        self._engine = engine

    async def start(self) -> None:
        # Models load once per process, before the first request rather than during it.
        self._engine = self._engine or await asyncio.get_running_loop().run_in_executor(
            self._executor, get_engine, self.threads, self.spin
        )
        log.info("ocr_pool_ready", workers=self.workers, capacity=self.capacity, threads=self.threads, spin=self.spin)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def admit(self, images: int = 1) -> None:
        """Reserve room for `images`; refuse with 503 when the queue is full."""
        if self.in_flight + images > self.capacity:
            metrics.REFUSED.inc(images)
            raise Unavailable("recognition queue full, retry shortly", retry_after_s=1)
        self.in_flight += images
        metrics.IN_FLIGHT.set(self.in_flight)

    def release(self, images: int = 1) -> None:
        self.in_flight -= images
        metrics.IN_FLIGHT.set(self.in_flight)

    async def recognize_for(self, data: bytes, gone: Callable[[], Awaitable[None]]) -> Recognition | None:
        """Admit, read and release one photo; None when `gone()` (the caller went away) finished first.

        `gone` is called only once the photo is admitted: a coroutine made before a refusal would never be awaited
        (Python warns "coroutine ... was never awaited")."""
        self.admit()
        engine = self._engine or get_engine()
        abandoned = threading.Event()

        def read() -> Recognition | None:
            if abandoned.is_set():
                self.abandoned += 1
                return None  # its caller went away while it waited for a thread
            return self._timed(engine, data)

        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._executor, read)
        # The place is given back when the thread is done with the photo (or skipped it), not when the caller goes.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self.release))
        watcher = asyncio.ensure_future(gone())
        try:
            await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if job.done():
            return job.result()
        abandoned.set()
        return None

    async def recognize(self, data: bytes) -> Recognition:
        engine = self._engine or get_engine()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, engine, data)

    def _timed(self, engine: OcrEngine, data: bytes) -> Recognition:
        with metrics.LATENCY.time():  # in the worker: the figure is the reading, not the wait for a worker
            return recognize_bytes(engine, data, self.options)

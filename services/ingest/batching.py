"""Per-batch work for the read path: calls that every read makes (the Safe at Home check, the hot-list match) are
collected while the previous batch is in flight and made once for all of them. At a thousand reads a second a query
or an HTTP call per read costs more CPU than the read itself (issue 18's profile: the match call was half of ingest's
thread, the Safe at Home check another eighth).

A batch that fails fails every read in it, with the same error a single call would have raised."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from prometheus_client import Histogram
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.clients import CallFailed, HotlistClient
from services.ingest.inflight import InFlight, take_batch
from services.ingest.protected import protected_pairs
from shared.errors import Unavailable

log = structlog.get_logger(__name__)

# Per batcher, per process: a batch's fixed cost (a round trip, a statement, a commit) is shared by this many reads,
# so a read's CPU falls as they fill (docs/scaling.md: two instances under one load each fill half as much).
BATCH_ITEMS = Histogram(
    "alpr_ingest_batch_items",
    "Reads per batch of each of ingest's batchers: existing-reads (idempotency lookup and Safe at Home check), "
    "protected-plates, hotlist-match, read-writer (the group commit)",
    ["batcher"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A")


async def once_more_if_dropped(fn: Callable[[A], Awaitable[R]], batch: A) -> R:
    """Batchers use an engine without pre-ping (a round trip per checkout): a connection that died with a
    PostgreSQL restart shows up as an invalidated-connection error, and the batch is tried once more on a fresh one.
    A flush retried after a lost commit finds its rows stored: they are answered as stored, not duplicated."""
    try:
        return await fn(batch)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.info("batch_retry_after_dropped_connection")
        return await fn(batch)


@dataclass
class _Call(Generic[T, R]):
    item: T
    future: asyncio.Future[R] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher(Generic[T, R]):
    """`call(item)` returns `run([.., item, ..])`'s answer for it; `run` answers a list in the items' order.

    One flusher by default: the next batch is taken when the previous one is answered, so it holds every read that
    came meanwhile. With two, the idle flusher took each read as it came, and at a steady 1,000 reads/s the batches
    held 3.5 reads instead of 5, each paying a whole call (issue 18: p95 45-56 ms with two, 33-40 ms with one, in
    three alternating pairs; docs/benchmarks-18.md)."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
        flushers: int = 1,
        failed: Callable[[Exception], BaseException] | None = None,
        inflight: InFlight | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self.name = name
        self.inflight = inflight
        self.linger_s = linger_s
        self.run = run
        self.max_batch = max_batch
        self.flushers = flushers
        self.failed = failed or (lambda exc: exc)
        self._queue: asyncio.Queue[_Call[T, R]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._sizes = BATCH_ITEMS.labels(name)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(), name=f"{self.name}-{i}") for i in range(self.flushers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            self._queue.get_nowait().future.set_exception(Unavailable("ingest is shutting down"))

    async def call(self, item: T) -> R:
        call: _Call[T, R] = _Call(item)
        self._queue.put_nowait(call)
        return await call.future

    async def _loop(self) -> None:
        while True:
            batch = await take_batch(self._queue, self.max_batch, inflight=self.inflight, linger_s=self.linger_s)
            live = [c for c in batch if not c.future.done()]  # a request cancelled while it waited
            if not live:
                continue
            self._sizes.observe(len(live))
            try:
                answers = await self.run([c.item for c in live])
            except Exception as exc:  # noqa: BLE001 - every waiting read gets the error a single call would raise
                log.info("batch_failed", batcher=self.name, items=len(live), error=repr(exc))
                for c in live:
                    if not c.future.done():
                        c.future.set_exception(self.failed(exc))
                continue
            for c, answer in zip(live, answers, strict=True):
                if c.future.done():
                    continue
                if isinstance(answer, BaseException):  # `run` failed this item alone
                    c.future.set_exception(self.failed(answer) if isinstance(answer, Exception) else answer)
                else:
                    c.future.set_result(answer)


def protected_batcher(
    engine: AsyncEngine, *, inflight: InFlight | None = None, linger_s: float = 0.0
) -> Batcher[tuple[str, tuple[str | None, ...]], set[str]]:
    """Safe at Home plates among each read's candidates for its agency (`(agency, candidates)`), one query per
    batch on the batchers' engine."""

    async def run(batch: list[tuple[str, tuple[str | None, ...]]]) -> list[set[str]]:
        candidates = [p for _, plates in batch for p in plates]
        found = await once_more_if_dropped(lambda c: protected_pairs(engine, c), candidates)
        return [{p for p in plates if p and (p, agency) in found} for agency, plates in batch]

    def failed(exc: Exception) -> BaseException:
        return Unavailable("database unavailable, retry later")

    return Batcher("protected-plates", run, failed=failed, inflight=inflight, linger_s=linger_s)


def match_batcher(
    client: HotlistClient, *, inflight: InFlight | None = None, linger_s: float = 0.0
) -> Batcher[dict[str, Any], dict[str, Any]]:
    """Hotlist's answers for many reads in one `POST /v1/match/batch`."""

    def failed(exc: Exception) -> BaseException:
        return exc if isinstance(exc, CallFailed) else CallFailed(f"hotlist: {type(exc).__name__}")

    async def run(reads: list[dict[str, Any]]) -> list[dict[str, Any] | CallFailed]:
        try:
            return list(await client.match_many(reads))
        except CallFailed as exc:
            if not exc.refused or len(reads) == 1:
                raise
        # Hotlist refused the batch for something in it: each read alone, so one bad read fails only itself.
        log.warning("match_batch_refused_split", reads=len(reads))
        out: list[dict[str, Any] | CallFailed] = []
        for read in reads:
            try:
                out.append((await client.match_many([read]))[0])
            except CallFailed as exc:
                out.append(exc)
        return out

    return Batcher("hotlist-match", run, failed=failed, inflight=inflight, linger_s=linger_s)

"""Batches that wait a moment for reads on their way (issue 18): used by the batchers, the group commit and the
idempotency lookup."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


class InFlight:
    """How many reads are on their way through ingest_read. A batcher whose queue holds few of them waits a moment
    for the others (`take_batch`): at 100 photo reads/s per worker every step was otherwise idle when the next read
    came, so each read paid a whole match call, Safe at Home query and commit for itself (issue 18's profile)."""

    def __init__(self) -> None:
        self.n = 0

    def __enter__(self) -> InFlight:
        self.n += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.n -= 1


async def take_batch(
    queue: asyncio.Queue[T], max_batch: int, *, inflight: InFlight | None = None, linger_s: float = 0.0
) -> list[T]:
    """The next batch: what is queued now; and, while at least as many reads are elsewhere in flight as the batch
    holds, what arrives within `linger_s` more (once). A lone read (one car, or a quiet hour) never waits."""
    batch = [await queue.get()]
    while len(batch) < max_batch and not queue.empty():
        batch.append(queue.get_nowait())
    if linger_s > 0 and inflight is not None and len(batch) < max_batch and inflight.n >= 2 * len(batch):
        await asyncio.sleep(linger_s)
        while len(batch) < max_batch and not queue.empty():
            batch.append(queue.get_nowait())
    return batch

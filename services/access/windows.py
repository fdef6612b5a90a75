"""Moving-window rate limits counted in PostgreSQL, so that several access replicas share one count.

The log-in throttle (services/access/throttle.py) and the public log's per-source limit used `limits`' in-process
memory: with two replicas behind one address a guesser got each limit once per replica. The shared store is
PostgreSQL, not Redis: the services already depend on it and nothing else, and what is counted is rare (failed
log-ins, public-report cache misses), a few rows a second at worst, which one indexed table carries easily.
`ALPR_LOGIN_THROTTLE_STORAGE=postgresql` selects it; a `limits` URI (`async+redis://...`) still works.

The same three calls as `limits`' MovingWindowRateLimiter (`hit`, `test`, `get_window_stats`), so the callers do not
change. A hit takes a transaction-scoped advisory lock on its key: two replicas counting the same key take turns, and
the window can never be overrun by a race.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from limits import RateLimitItem
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_COUNT = text(
    "SELECT count(*), extract(epoch FROM min(at)) FROM access.rate_hits "
    "WHERE key = :key AND at > clock_timestamp() - make_interval(secs => :window)"
)


class WindowStats(NamedTuple):
    reset_time: float  # epoch seconds when the oldest hit in the window leaves it
    remaining: int


class PgMovingWindow:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def hit(self, item: RateLimitItem, *ids: str) -> bool:
        """Count one hit unless the window is full; whether it was counted."""
        key = item.key_for(*ids)
        window = item.get_expiry()
        async with self.engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
            count = (await conn.execute(_COUNT, {"key": key, "window": window})).one()[0]
            if count >= item.amount:
                return False
            await conn.execute(text("INSERT INTO access.rate_hits (key) VALUES (:key)"), {"key": key})
            # Hits out of the window count for nothing: this key's go as it is hit again.
            await conn.execute(
                text("DELETE FROM access.rate_hits WHERE key = :key AND at <= now() - make_interval(secs => :window)"),
                {"key": key, "window": window},
            )
        return True

    async def test(self, item: RateLimitItem, *ids: str) -> bool:
        """Whether a hit would be counted now."""
        return (await self.get_window_stats(item, *ids)).remaining > 0

    async def get_window_stats(self, item: RateLimitItem, *ids: str) -> WindowStats:
        window = item.get_expiry()
        async with self.engine.connect() as conn:
            count, oldest = (await conn.execute(_COUNT, {"key": item.key_for(*ids), "window": window})).one()
        reset = float(oldest) + window if oldest is not None else time.time() + window
        return WindowStats(reset, max(0, item.amount - count))

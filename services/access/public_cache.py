"""The public log of use, cached per (agency, period) and limited: anyone may ask without a token, so a request must not
be able to buy seconds of database work at will. One computation per period at a time, kept for
`public_report_cache_s`; computations (cache misses) limited per source (429 with Retry-After), counted where the log-in
throttle counts (`ALPR_LOGIN_THROTTLE_STORAGE`: in memory, or shared by the replicas in PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from limits import parse
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from services.access.throttle import moving_window
from shared.errors import TooManyRequests
from shared.settings import Settings

MAX_PERIODS = 256
REFUSED = Counter("alpr_public_report_refused_total", "Public log-of-use requests refused by the per-source limit")


class PublicReports:
    def __init__(self, settings: Settings, engine: AsyncEngine, *, name: str = "public-report") -> None:
        self.name = name  # what the per-source count is kept under: each cache counts its own misses
        self.ttl_s = settings.public_report_cache_s
        self.limit = parse(settings.public_report_limit)
        self.limiter = moving_window(settings, engine)
        self._cache: OrderedDict[tuple[str, str, str], tuple[float, Any]] = OrderedDict()
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def get(
        self, source: str, agency: str, start: datetime, end: datetime, compute: Callable[[], Awaitable[Any]]
    ) -> Any:
        key = (agency, start.isoformat(), end.isoformat())
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # a second asker of the same agency and period waits for the first one's answer
            hit = self._cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            if not await self.limiter.hit(self.limit, self.name, source):
                stats = await self.limiter.get_window_stats(self.limit, self.name, source)
                REFUSED.inc()
                wait = max(1, int(stats.reset_time - time.time()) + 1)
                raise TooManyRequests(
                    f"too many new public reports from this address: retry in {wait} s", retry_after_s=wait
                )
            report = await compute()
            self._cache[key] = (time.monotonic() + self.ttl_s, report)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_PERIODS:
                old, _ = self._cache.popitem(last=False)
                self._locks.pop(old, None)
            return report

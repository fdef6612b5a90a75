"""Failed logins slow the source down; an administrator of the account's agency lifts it (docs/access.md, "Log-in
throttling", is the one statement of the rule).

Moving windows from the `limits` library: failures per (source, account) and per source, each with its own window;
once one is spent the source waits (429 with Retry-After) until it frees. A stranger hammering an officer's badge
only locks themselves out; the officer logs in from the car. A wide limit per account across all sources slows a
distributed guess without letting one stranger shut the account. The storage: in-process memory by default (one
access process); `postgresql` (services/access/windows.py) or a `limits` URI such as `async+redis://...` shares it
among several replicas.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from sqlalchemy.ext.asyncio import AsyncEngine

from services.access.windows import PgMovingWindow
from shared.settings import Settings


def moving_window(settings: Settings, engine: AsyncEngine) -> MovingWindowRateLimiter | PgMovingWindow:
    """The limiter `ALPR_LOGIN_THROTTLE_STORAGE` names: `postgresql`, or a `limits` storage URI."""
    if settings.login_throttle_storage == "postgresql":
        return PgMovingWindow(engine)
    return MovingWindowRateLimiter(storage_from_string(settings.login_throttle_storage))  # type: ignore[arg-type]


class LoginThrottle:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.limiter = moving_window(settings, engine)
        self.per_account: RateLimitItem = RateLimitItemPerSecond(settings.login_max_failures, settings.login_lockout_s)
        self.per_source: RateLimitItem = RateLimitItemPerSecond(
            settings.login_source_max_failures, settings.login_lockout_s
        )
        self.account_wide: RateLimitItem = RateLimitItemPerSecond(
            settings.login_account_max_failures, settings.login_lockout_s
        )

    def _checks(self, source: str, account: str, epoch: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        # `epoch`: when an administrator last lifted the account's lock-out. Its windows are keyed by it, so an
        # unlock (API or CLI, any replica: it is a column of the user) starts them afresh.
        account = account.strip().lower()
        return [
            (self.per_account, ("login", source, account, epoch)),
            (self.per_source, ("login-source", source)),
            (self.account_wide, ("login-account", account, epoch)),
        ]

    async def wait_s(self, source: str, account: str, epoch: str = "") -> int:
        """0 when this source may try this account now, else the seconds until it may."""
        wait = 0.0
        for item, ids in self._checks(source, account, epoch):
            if not await self.limiter.test(item, *ids):
                stats = await self.limiter.get_window_stats(item, *ids)
                wait = max(wait, stats.reset_time - time.time())
        return max(1, int(wait) + 1) if wait > 0 else 0

    async def failed(self, source: str, account: str, epoch: str = "") -> None:
        for item, ids in self._checks(source, account, epoch):
            await self.limiter.hit(item, *ids)

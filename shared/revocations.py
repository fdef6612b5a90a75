"""Ended sessions end everywhere: every service refuses tokens the access service has revoked.

Access publishes revocations in `access.revocations` (logout, refresh-token reuse, a disabled, locked or re-keyed
user or client); every service role may read that one table. Each process keeps the recent list in memory and
re-reads it every `revocation_refresh_s` (a few seconds): a revoked token stops working everywhere within that.
Only revocations younger than `revocation_horizon_s` matter: older tokens have expired anyway.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import Principal
from shared.errors import Unauthorized, Unavailable

log = structlog.get_logger(__name__)

SESSION, TOKEN, SUBJECT = "session", "token", "subject"


class RevocationList:
    def __init__(self, engine: AsyncEngine, *, refresh_s: float, horizon_s: float) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self.horizon_s = horizon_s
        self._sessions: set[str] = set()
        self._tokens: set[str] = set()
        self._subjects: dict[str, float] = {}  # subject -> latest revocation (epoch seconds)
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def _load(self) -> None:
        async with self._lock:
            if time.monotonic() - self._loaded_at < self.refresh_s:
                return
            try:
                async with self.engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            text(
                                "SELECT kind, value, max(revoked_at) AS at FROM access.revocations "
                                "WHERE revoked_at > now() - make_interval(secs => :h) GROUP BY kind, value"
                            ),
                            {"h": self.horizon_s},
                        )
                    ).all()
            except Exception as exc:  # noqa: BLE001 - keep the last list a while; past that, refuse (503)
                if time.monotonic() - self._loaded_at > 10 * self.refresh_s:
                    log.warning("revocations_unavailable", error=type(exc).__name__)
                    raise Unavailable("token revocations unavailable (database unreachable)") from exc
                return
            self._sessions = {r.value for r in rows if r.kind == SESSION}
            self._tokens = {r.value for r in rows if r.kind == TOKEN}
            self._subjects = {r.value: _epoch(r.at) for r in rows if r.kind == SUBJECT}
            self._loaded_at = time.monotonic()

    async def check(self, principal: Principal) -> None:
        """Raise 401 when the principal's token, session or identity was revoked."""
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            await self._load()
        if principal.session_id and principal.session_id in self._sessions:
            raise Unauthorized("token revoked: the session has ended")
        if principal.token_id and principal.token_id in self._tokens:
            raise Unauthorized("token revoked")
        revoked_at = self._subjects.get(principal.subject)
        if revoked_at is not None:
            issued = principal.claims.get("iat")
            if not isinstance(issued, int | float) or issued <= revoked_at:
                raise Unauthorized("token revoked: issued before its holder was disabled, locked or re-keyed")


def _epoch(value: datetime) -> float:
    return value.timestamp()

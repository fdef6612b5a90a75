"""A per-process cache of verified tokens: a car posts many reads with one token, and the signature check and
claim parsing (about a millisecond) would otherwise be a large share of a read's CPU."""

from __future__ import annotations

import time
from collections import OrderedDict

from shared.auth import Principal, TokenVerifier

MAX_ENTRIES = 4096
MAX_AGE_S = 60.0  # re-verified at least this often (key rotation/removal takes effect within it)


class CachingVerifier:
    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner
        # Never longer than the verifier trusts its key set: a removed key stops working within ALPR_JWKS_CACHE_S.
        self.max_age_s = min(MAX_AGE_S, float(getattr(inner.source, "cache_s", MAX_AGE_S)))
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(token)
            return hit[1]
        principal = await self.inner.verify(token)  # raises for a bad token: nothing cached
        until = now + self.max_age_s
        if principal.expires_at is not None:
            until = min(until, principal.expires_at.timestamp())
        self._cache[token] = (until, principal)
        if len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        return principal

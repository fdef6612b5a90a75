"""How a background loop is doing, for `/readyz`: a loop that keeps failing makes the service report itself
degraded, with the reason, instead of looking ready while its work piles up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FAILING_AFTER = 3  # consecutive failed rounds before /readyz says so (one failed round is an outage blip)


@dataclass
class LoopHealth:
    name: str
    failures: int = 0
    last_error: str | None = None
    last_ok: float = field(default_factory=time.time)

    def ok(self) -> None:
        self.failures, self.last_error, self.last_ok = 0, None, time.time()

    def failed(self, error: BaseException | str) -> None:
        self.failures += 1
        self.last_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"[:300]

    def reason(self) -> str | None:
        if self.failures < FAILING_AFTER:
            return None
        ago = time.time() - self.last_ok
        return f"{self.failures} rounds failed in a row (last success {ago:.0f} s ago): {self.last_error}"

"""The audit entry of each hit delivered to a car (13.824 subd. 7(b): data disseminated): one per hit event sent on
the unit's stream or answered to its poll, naming the hit, the read, the unit and the event, under the caller (the
officer of the unit's shift, or the supervisor following it). Hits are rare: an entry each costs nothing per read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.scoping import Scope


async def audit_hits_delivered(
    session: AsyncSession, scope: Scope, events: Sequence[Any], *, via: str, source_ip: str | None
) -> int:
    """An entry per hit event among `events`, in the caller's transaction; returns how many."""
    n = 0
    for e in events:
        if e.kind != "hit":
            continue
        await scope.audit(
            session, service="ingest", action="hit.deliver", object_type="hit",
            object_ids=[str((e.payload or {}).get("hit_id") or e.dedupe_key.removeprefix("hit:"))],
            source_ip=source_ip, details={"unit": e.unit, "event_id": e.id, "read_id": str(e.read_id), "via": via},
        )  # fmt: skip
        n += 1
    return n

"""The officer logged in on a read's unit when it was captured (its shift's), for reads matched after their
answer: the worker's retries, the agents' import and its second pass. Hotlist keeps that officer on the hit, which
then opens for them as a hit found at read time does (13.824 subd. 7(a)); a read without a shift (a fixed reader's)
has none, and its hits open for the agency's supervisors and under a grant only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text


async def shift_officers(conn: Any, shift_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Each shift's officer (token subject), in one query. `conn`: a session or connection."""
    ids = list({s for s in shift_ids if s is not None})
    if not ids:
        return {}
    rows = await conn.execute(text("SELECT id, officer FROM ingest.shifts WHERE id = ANY(:ids)"), {"ids": ids})
    return {r.id: r.officer for r in rows}

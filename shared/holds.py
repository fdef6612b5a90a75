"""Holds (Minn. Stat. 13.824 subd. 3 and the policy's retention section), written once for the services that keep
held data: ingest holds reads, hotlist holds hits. Their terms, and the rules of placing, releasing and listing
them (`HoldBook`); each service keeps its rows in its own schema and its own routes (the HTTP API of each)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fastapi import Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit import client_ip, record
from shared.auth import Principal
from shared.errors import Conflict
from shared.scoping import Scope
from shared.text import CleanInput

# 13.82: private by default; active investigative (or public) where a case says so.
Classification = Literal["private", "public", "active_investigative"]
# investigation: the agency's case; exculpatory: a data subject's written request (13.824 subd. 3(b)).
HoldKind = Literal["investigation", "exculpatory"]


class HoldTerms(CleanInput):
    kind: HoldKind = "investigation"
    case_number: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=3, max_length=4000)
    classification: Classification = "active_investigative"


class HoldRelease(CleanInput):
    reason: str = Field(min_length=3, max_length=4000)


class HeldRecord(Protocol):
    """A hold row as both services store it (ingest.holds, hotlist.hit_holds)."""

    id: uuid.UUID
    agency: str
    kind: str
    case_number: str
    reason: str
    classification: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


class HoldSummary(BaseModel):
    """What every hold answer says, whatever it holds (each service adds its count: `reads`, `hits`)."""

    hold_id: uuid.UUID
    kind: str
    case_number: str
    reason: str
    classification: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None
    released_by: str | None


def summary_fields(hold: HeldRecord) -> dict[str, Any]:
    return {
        "hold_id": hold.id,
        "kind": hold.kind,
        "case_number": hold.case_number,
        "reason": hold.reason,
        "classification": hold.classification,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at,
        "released_at": hold.released_at,
        "released_by": hold.released_by,
    }


@dataclass(frozen=True)
class HoldBook:
    """One service's holds: the rules of placing, releasing, reading and listing them, written once for reads
    (ingest), hits (hotlist) and the exculpatory requests and reviews behind ingest's holds. The rows stay in each
    service's own schema (a service writes only its own); the rules are the same code in both.

    `hold` and `item` are the service's table classes: the hold (fields of `HeldRecord`) and one held object
    (`hold_id` and the object's id in `item_key`)."""

    service: str  # the audit's service
    held: str  # what a hold keeps: the audit's object type when one is placed ("read", "hit")
    hold: Any
    item: Any
    item_key: str  # the item's column naming the held object ("read_id", "hit_id")
    released_type: str  # the audit's object type when one is released ("hold", "hit_hold")

    async def place(
        self,
        session: AsyncSession,
        request: Request,
        principal: Principal,
        scope: Scope,
        terms: HoldTerms,
        ids: list[Any],
        items: list[Any],
    ) -> Any:
        """A new hold on `ids` (already checked to be the caller's agency's) with its `items` (their `hold_id` is
        set here), audited in the same transaction."""
        hold = self.hold(
            agency=scope.agency,
            kind=terms.kind,
            case_number=terms.case_number,
            reason=terms.reason,
            classification=terms.classification,
            placed_by=principal.subject,
            placed_at=datetime.now(UTC),
        )
        session.add(hold)
        await session.flush()
        for item in items:
            item.hold_id = hold.id
            session.add(item)
        await session.flush()
        await record(
            session,
            service=self.service,
            action="hold.place",
            principal=principal,
            object_type=self.held,
            object_ids=[str(i) for i in ids[:100]],
            case_number=terms.case_number,
            source_ip=client_ip(request),
            record_count=len(items),
            details={"hold_id": str(hold.id), "kind": terms.kind, "reason": terms.reason},
        )
        return hold

    async def active(self, session: AsyncSession, scope: Scope, hold_id: uuid.UUID, released: str) -> Any:
        """The caller's agency's hold, locked, refused (409 `released`) when it has been released."""
        hold = scope.check(await session.get(self.hold, hold_id, with_for_update=True), "hold")
        if hold.released_at is not None:
            raise Conflict(released)
        return hold

    async def release(
        self,
        session: AsyncSession,
        request: Request,
        principal: Principal,
        scope: Scope,
        hold_id: uuid.UUID,
        body: HoldRelease,
        then: Callable[[Any], Awaitable[None]] | None = None,
    ) -> tuple[Any, int]:
        """Release with a reason, audited; `then` runs before the audit entry (ingest gives its reads back their
        classification). Returns the hold and how many objects it kept."""
        hold = await self.active(session, scope, hold_id, "the hold is already released")
        hold.released_at, hold.released_by, hold.release_reason = datetime.now(UTC), principal.subject, body.reason
        await session.flush()
        if then is not None:
            await then(hold)
        n = (await self.counts(session, [hold.id])).get(hold.id, 0)
        await record(
            session,
            service=self.service,
            action="hold.release",
            principal=principal,
            object_type=self.released_type,
            object_ids=[str(hold.id)],
            case_number=hold.case_number,
            source_ip=client_ip(request),
            record_count=n,
            details={"reason": body.reason},
        )
        return hold, n

    async def counts(self, session: AsyncSession, hold_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """How many objects each hold keeps."""
        if not hold_ids:
            return {}
        column = self.item.hold_id
        rows = await session.execute(select(column, func.count()).where(column.in_(hold_ids)).group_by(column))
        return {h: int(n) for h, n in rows.all()}

    async def listed(
        self,
        session: AsyncSession,
        scope: Scope,
        *,
        case_number: str | None,
        active: bool | None = None,
        limit: int,
    ) -> tuple[list[Any], dict[uuid.UUID, int]]:
        """The caller's agency's holds, newest first, with their counts."""
        stmt = scope.where(select(self.hold), self.hold.agency).order_by(self.hold.placed_at.desc())
        if case_number:
            stmt = stmt.where(self.hold.case_number == case_number)
        if active is not None:
            stmt = stmt.where(self.hold.released_at.is_(None) if active else self.hold.released_at.is_not(None))
        holds = list((await session.execute(stmt.limit(limit))).scalars())
        return holds, await self.counts(session, [h.id for h in holds])

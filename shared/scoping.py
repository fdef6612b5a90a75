"""One door to stored data: every record carries its custodian agency, and every query of such records is scoped
by the caller's agency here, not per route.

A route that returns or changes agency-owned records takes `Scoped` (the caller's `Scope`) and lets it filter its
queries (`scope.where`), check a record it loaded by id (`scope.check`: another agency's record answers 404, as if
it did not exist) and write the audit entry in the route's own transaction (`scope.audit`). Cross-agency access
exists only through a grant (the access workflow) or a recorded disclosure.

`READ_DOORS` is the table of every route through which stored reads, their positions or photos leave the system,
with what guards each; tests/security/test_scan.py checks it against the apps' routes (a route that returns read
data and is not in the table, or is in it without taking `Scoped`, fails the test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit import AuditEntry, record
from shared.auth import CurrentPrincipal, Principal
from shared.errors import NotFound

S = TypeVar("S")

# (method, path) -> what guards it. Every route that returns stored reads, positions, photos or hits is here.
READ_DOORS: dict[tuple[str, str], str] = {
    ("POST", "/v1/reads/search"): "access: a grant (plates, dates, area, warrant, expiry, revocation) of the "
    "caller; the grant's agency's reads only; audited; a disclosure when an outside agency asks",
    ("GET", "/v1/objects/{key:path}"): "access: a link signed for one viewer (subject, agency, grant, case) and "
    "that viewer's token; each view audited with actor, agency, grant, case",
    ("GET", "/v1/requests/{request_id}"): "access: the requester, deciding supervisors or auditors of the "
    "request's agency; court-order links bound to the viewer; audited",
    ("POST", "/v1/internal/reads/search"): "ingest: service role only (access, inside a grant); audited",
    ("POST", "/v1/internal/hits/of-read"): "hotlist: service role only (access's evidence export, under a grant "
    "for the hold's case): the grant's agency's hits only; access records the disclosure and its audit entry",
    ("GET", "/v1/units/{unit}/events"): "ingest: the unit's own officer on shift, or a supervisor of its agency: "
    "live events of the open shift only, never history; supervisors audited",
    ("GET", "/v1/units/{unit}/stream"): "ingest: as the events poll (SSE)",
    ("GET", "/v1/agencies/{agency}/events"): "ingest: covert hits for the owning agency's supervisors only; audited",
    ("GET", "/v1/agents/quarantine"): "ingest: admins of the agency, with a written reason; plates, positions, "
    "pictures redacted; audited",
    ("POST", "/v1/quarantine/open"): "access: the holder of an active grant of the post's agency whose plates, dates "
    "and area cover the post; audited with the grant and case; refusals audited",
    ("POST", "/v1/internal/agents/quarantine/post"): "ingest: access's identity only, with a token signed for this "
    "post under a grant of its agency (act_for); another agency's post is 404; audited",
    ("GET", "/v1/holds"): "ingest: supervisors and auditors of the holds' agency",
    ("GET", "/v1/hits/pending"): "hotlist: supervisors of the hits' custodian agency; audited",
    ("GET", "/v1/hits/{hit_id}"): "hotlist: the hit's custodian agency (covert: the list owner); audited",
    ("GET", "/v1/lists/{name}/entries"): "hotlist: supervisors of the list's agency; audited",
    ("GET", "/v1/hit-holds"): "hotlist: supervisors and auditors of the holds' agency",
    ("GET", "/v1/disclosures"): "access: supervisors and auditors of the disclosing agency; audited",
}

# Payload fields that mean "this answer carries stored read data" (the scan test looks for them in responses).
READ_FIELDS = frozenset({"read_id", "read_ids", "image_url", "crop_url", "read_plate"})


@dataclass(frozen=True)
class Scope:
    """The caller and the agency whose records it may see."""

    principal: Principal

    @property
    def agency(self) -> str:
        # "" for a token without an agency (a single-agency deployment): it sees the records without one.
        return self.principal.agency or ""

    def owns(self, custodian: str | None) -> bool:
        return (custodian or "") == self.agency

    def where(self, stmt: S, column: Any) -> S:
        """`stmt` limited to the caller's agency's records (`column` holds the custodian agency)."""
        return stmt.where(column == self.agency)  # type: ignore[attr-defined,no-any-return]

    def check(self, row: S | None, what: str, custodian: str | None = None) -> S:
        """`row` if it is the caller's agency's, else 404 (another agency's record does not exist for the caller)."""
        if row is None:
            raise NotFound(f"no such {what}")
        owner = custodian if custodian is not None else getattr(row, "agency", None)
        if not self.owns(owner):
            raise NotFound(f"no such {what} in your agency")
        return row

    async def audit(self, session: AsyncSession, **kwargs: Any) -> AuditEntry:
        """The audit entry, in the caller's transaction: it commits with the act, or neither happens."""
        return await record(session, principal=self.principal, **kwargs)


async def scope(principal: CurrentPrincipal) -> Scope:
    return Scope(principal)


Scoped = Annotated[Scope, Depends(scope)]

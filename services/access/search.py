"""Archived-read search inside a grant: check the grant covers the query, ask ingest, presign images, audit.

Reads live in the ingest service (`POST /v1/internal/reads/search`, docs/contracts.md); access calls it with a
service token it signs itself (it is the token issuer), only after the checks here pass.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from fastapi import Request
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import events, workflow
from services.access.models import Grant
from services.access.schemas import ReadOut, SearchIn, SearchOut
from services.access.scope import Area, area_reason, location_history_reason, plates_reason, window_reason
from services.access.security import KeyRing
from shared.acting_for import ACT_FOR_TTL_S, act_for_claims
from shared.auth import AGENCY, Principal
from shared.errors import AppError, BadRequest, Forbidden, NotFound, Unavailable, Unprocessable
from shared.http import service_client
from shared.settings import Settings
from shared.storage import LinkViewer, SignedLinks
from shared.text import has_control

log = structlog.get_logger(__name__)
SERVICE_SUBJECT = "service:access"


class IngestClient:
    """Ingest's internal read search. The transport is injectable so tests can serve the contract in-process."""

    def __init__(
        self, base_url: str, keys: KeyRing, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url
        self.keys = keys
        self.timeout_s = timeout_s
        self.transport = transport
        # One client for the process: a client per search paid a new connection and TLS context each time.
        self._client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _grant_token(self, grant_id: str, body: dict[str, Any]) -> str:
        # One token per query: ingest answers only the query and agency the grant was checked for.
        claims = act_for_claims(grant_id, body["agency"], body)
        return self.keys.sign(subject=SERVICE_SUBJECT, ttl_s=ACT_FOR_TTL_S, claims=claims)

    async def search(self, body: dict[str, Any], grant_id: str) -> dict[str, Any]:
        if self._client is None:
            self._client = service_client(self.base_url, timeout_s=self.timeout_s, transport=self.transport)
        try:
            resp = await self._client.post(
                "/v1/internal/reads/search",
                json=body,
                headers={"Authorization": f"Bearer {self._grant_token(grant_id, body)}"},
            )
        except httpx.HTTPError as exc:
            raise Unavailable("the ingest service (read archive) is unreachable, retry later") from exc
        if resp.status_code in (400, 422):
            detail = resp.json().get("detail", "bad query") if resp.content else "bad query"
            raise BadRequest(f"the read archive refused the query: {detail}")
        if resp.status_code != 200:
            log.warning("ingest_search_failed", status=resp.status_code)
            raise Unavailable(f"the read archive answered {resp.status_code}, retry later")
        data: dict[str, Any] = resp.json()
        return data


def _area(lat: float | None, lon: float | None, radius: float | None) -> Area | None:
    return None if lat is None or lon is None or radius is None else Area(lat, lon, radius)


def coverage_reason(grant: Grant, query: SearchIn) -> str | None:
    """Why the grant does not cover the query, or None."""
    return (
        plates_reason(grant.plates, grant.misread_tolerant, query.plates, query.misread_tolerant)
        or window_reason(grant.start, grant.end, query.start, query.end)
        or area_reason(
            _area(grant.area_lat, grant.area_lon, grant.area_radius_m),
            _area(query.area.lat, query.area.lon, query.area.radius_m) if query.area else None,
            grant_plates=grant.plates,
        )
        or location_history_reason(
            query.plates,
            query.start,
            query.end,
            query.area is not None,
            warrant=grant.warrant_number,
            exigency=grant.exigency_attestation,
        )  # fmt: skip
    )


def _link(links: SignedLinks, key: str | None, ttl_s: int, viewer: LinkViewer) -> str | None:
    # Our own signed link, whatever the store: access serves the image and audits each view (`GET /v1/objects`),
    # to the viewer it was issued to only.
    return links.url(key, ttl_s, viewer) if key else None


async def search(
    session: AsyncSession,
    settings: Settings,
    ingest: IngestClient,
    principal: Principal,
    request: Request,
    query: SearchIn,
) -> SearchOut:
    params = query.model_dump(mode="json")
    grant = await session.get(Grant, query.grant_id)

    async def refused(error: AppError) -> Exception:
        return await events.refuse(
            session, error, "reads.search", request=request, principal=principal, object_type="grant",
            object_ids=[str(query.grant_id)], grant_id=str(query.grant_id),
            case_number=grant.case_number if grant else None, details={"query": params},
        )  # fmt: skip

    if query.cursor is not None and has_control(query.cursor):
        raise await refused(Unprocessable("cursor: control characters (NUL and the like) are not allowed"))
    if grant is None:
        raise await refused(NotFound("no such grant"))
    if grant.holder != principal.subject:
        raise await refused(Forbidden("this grant was given to someone else"))
    if grant.revoked_at is not None:
        raise await refused(Forbidden(f"the grant was revoked: {grant.revoke_reason}"))
    if not workflow.grant_active(grant):
        raise await refused(Forbidden(f"the grant expired at {grant.expires_at.isoformat(timespec='seconds')}"))
    if principal.needs_training and not principal.training_current():
        raise await refused(Forbidden("ALPR training is not current: an untrained officer may not read ALPR data"))
    reason = coverage_reason(grant, query)
    if reason is not None:
        raise await refused(Forbidden(f"outside the grant: {reason}"))

    body = {
        "plates": query.plates,
        "misread_tolerant": query.misread_tolerant,
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "area": query.area.model_dump() if query.area else None,
        "agency": grant.data_agency or "",  # only the reads of the agency whose supervisor opened them
        "limit": query.limit,
        "cursor": query.cursor,
    }
    try:
        answer = await ingest.search(body, str(grant.id))
    except AppError as exc:
        raise await refused(exc) from None
    rows: list[dict[str, Any]] = answer.get("reads", [])
    ttl = settings.presign_ttl_s
    links = SignedLinks.from_settings(settings)
    viewer = LinkViewer(principal.subject, principal.agency or "", str(grant.id), grant.case_number)
    image_urls = [_link(links, r.get("image_key"), ttl, viewer) for r in rows]
    crop_urls = [_link(links, r.get("crop_key"), ttl, viewer) for r in rows]
    reads = [
        ReadOut(
            read_id=str(r["read_id"]),
            plate=r.get("plate"),
            state=r.get("state"),
            captured_at=r["captured_at"],
            lat=r.get("lat"),
            lon=r.get("lon"),
            unit=r.get("unit"),
            camera=r.get("camera"),
            agency=r.get("agency"),
            image_url=image,
            crop_url=crop,
        )  # fmt: skip
        for r, image, crop in zip(rows, image_urls, crop_urls, strict=True)
    ]
    read_ids = [r.read_id for r in reads]
    await events.record(
        session, "reads.search", request=request, principal=principal, object_type="read", object_ids=read_ids,
        grant_id=str(grant.id), case_number=grant.case_number, record_count=len(reads),
        details={"query": params, "images_linked": sum(1 for u in image_urls if u),
                 "links_expire_in": ttl, "next_cursor": answer.get("next_cursor")},
    )  # fmt: skip
    if principal.has_role(AGENCY) and reads:
        # An outside agency's search is itself a disclosure of our data to that agency.
        recipient = str(principal.claims.get("agency_name") or principal.agency)
        basis = await workflow.legal_basis(session, grant)
        await workflow.record_disclosure(
            session, principal, request, grant, recipient_name=recipient,
            recipient_ori=principal.agency, legal_basis=basis, purpose=f"search under grant {grant.id}",
            read_ids=read_ids,
        )  # fmt: skip
    return SearchOut(
        grant_id=grant.id, case_number=grant.case_number, count=len(reads), reads=reads,
        next_cursor=answer.get("next_cursor"), links_expire_in=ttl,
    )  # fmt: skip

"""Evidence export: a held read's package for a prosecutor or court, through a grant, audited as a disclosure
(Minn. Stat. 13.824 subd. 7). A zip of the photo and crop, the read's record and holds (ingest), its hits with
verifications and dispositions (hotlist), the audit entries about it, and a manifest of SHA-256 hashes."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import ConfigDict, Field
from sqlalchemy import text

from services.access import workflow
from services.access.deps import Discloser, FiguresDep, StoreDep
from services.access.models import AccessRequest, Grant
from services.access.reports import FiguresClient, ServiceRefused
from services.access.schemas import RECIPIENT_NOTICE, DisclosureIn
from services.access.scope import distance_m, pattern_covers
from shared.db import SessionDep
from shared.errors import Conflict, Forbidden, NotFound, Unavailable, Unprocessable
from shared.storage import ObjectNotFound, StorageError
from shared.text import CleanInput

router = APIRouter(tags=["grants"])


# Every audit entry naming the read, the storing group commit's and each search or export that returned it, through
# the GIN index on `object_ids` (migration 2823): `= ANY(object_ids)` cannot use it and read the whole log.
AUDIT_OF_READ_SQL = (
    "SELECT seq, at, service, actor, action, case_number, grant_id, outcome, details FROM audit.audit_log "
    "WHERE object_ids @> ARRAY[CAST(:r AS TEXT)] ORDER BY seq"
)


class EvidenceIn(CleanInput):
    model_config = ConfigDict(extra="forbid")

    grant_id: uuid.UUID
    read_id: uuid.UUID
    recipient_name: str = Field(min_length=2, max_length=200)
    recipient_ori: str | None = Field(default=None, max_length=16)
    legal_basis: Literal["agency_request", "court_order"]
    purpose: str = Field(min_length=3, max_length=4000)


_REFUSED = {404: NotFound, 409: Conflict, 422: Unprocessable}


async def _call(figures: FiguresClient, service: str, path: str, body: dict[str, Any], grant: Grant) -> dict[str, Any]:
    try:
        return await figures.post(service, path, body, grant_id=str(grant.id))
    except ServiceRefused as exc:
        raise _REFUSED[exc.status](exc.detail) from None


def read_outside_grant(grant: Grant, read: dict[str, Any]) -> str | None:
    """Why the grant does not cover this read (its plates, dates and area, as for a search), or None."""
    plate = read.get("plate")
    if grant.plates and not (
        plate and any(pattern_covers(g, plate, tolerant=grant.misread_tolerant) for g in grant.plates)
    ):
        return f"the read's plate is outside the grant's plates ({', '.join(grant.plates)})"
    at = datetime.fromisoformat(str(read["captured_at"]))
    if not grant.start <= at <= grant.end:
        return "the read was captured outside the grant's dates"
    if grant.area_lat is not None and grant.area_lon is not None and grant.area_radius_m is not None:
        lat, lon = read.get("lat"), read.get("lon")
        if lat is None or lon is None or distance_m(grant.area_lat, grant.area_lon, lat, lon) > grant.area_radius_m:
            return "the read was captured outside the grant's area"
    return None


@router.post(
    "/v1/evidence",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="A held read's evidence package (zip with a SHA-256 manifest), recorded as a disclosure",
)
async def export_evidence(
    body: EvidenceIn,
    request: Request,
    principal: Discloser,
    session: SessionDep,
    store: StoreDep,
    figures: FiguresDep,
) -> Response:
    grant = await session.get(Grant, body.grant_id)
    if grant is None:
        raise NotFound("no such grant")
    req = await session.get(AccessRequest, grant.request_id)
    assert req is not None
    if grant.holder != principal.subject and not workflow.supervises(principal, req):
        raise Forbidden("only the grant's holder or a supervisor exports under it")
    if not workflow.grant_active(grant):
        raise Conflict("the grant is revoked or expired")
    read_id = str(body.read_id)
    agency = grant.data_agency or ""  # the grant opens its agency's reads only
    record = await _call(
        figures, "ingest", "/v1/internal/reads/evidence", {"read_id": read_id, "agency": agency}, grant
    )
    if grant.case_number not in {h["case_number"] for h in record["holds"]}:
        raise Forbidden(f"the read is not held for the grant's case {grant.case_number}")
    outside = read_outside_grant(grant, record["read"])
    if outside:
        raise Forbidden(outside)
    hits = await _call(figures, "hotlist", "/v1/internal/hits/of-read", {"read_id": read_id, "agency": agency}, grant)
    entries = (
        await session.execute(
            text(AUDIT_OF_READ_SQL),
            {"r": read_id},
        )
    ).all()
    files: dict[str, bytes] = {}
    read = record["read"]
    for name, key in (("photo", read.get("image_key")), ("crop", read.get("crop_key"))):
        if key:
            try:
                files[f"{name}.{key.rsplit('.', 1)[-1]}"] = await store.get(key)
            except ObjectNotFound:
                raise Conflict(f"the read's {name} is missing from the object store") from None
            except StorageError as exc:
                raise Unavailable("object store unavailable, retry later") from exc

    def as_json(value: Any) -> bytes:
        return json.dumps(value, indent=2, sort_keys=True, default=str).encode()

    files["read.json"] = as_json({"read": read, "holds": record["holds"]})
    files["hits.json"] = as_json(hits["hits"])
    files["audit.json"] = as_json(
        [
            {
                "seq": e[0],
                "at": e[1].isoformat(),
                "service": e[2],
                "actor": e[3],
                "action": e[4],
                "case_number": e[5],
                "grant_id": e[6],
                "outcome": e[7],
                "details": e[8],
            }
            for e in entries
        ]  # fmt: skip
    )
    disclosure = await workflow.disclose(
        session,
        principal,
        request,
        DisclosureIn(
            grant_id=grant.id,
            recipient_name=body.recipient_name,
            recipient_ori=body.recipient_ori,
            legal_basis=body.legal_basis,
            purpose=body.purpose,
            read_ids=[read_id],
        ),
    )
    manifest = {
        "read_id": read_id,
        "case_number": grant.case_number,
        "disclosure_id": str(disclosure.id),
        "recipient": body.recipient_name,
        "exported_by": principal.subject,
        "exported_at": datetime.now(UTC).isoformat(),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "recipient_notice": RECIPIENT_NOTICE,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(files.items()):
            z.writestr(name, data)
        z.writestr("manifest.json", as_json(manifest))
    return Response(
        buf.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="evidence-{read_id}.zip"'},
    )

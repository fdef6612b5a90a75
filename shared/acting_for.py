"""Internal calls that return stored reads carry the grant they serve, signed into the token.

A service token alone (a `service` role) opens no read: the access service, which checks the grant, signs for each
such call a short-lived token whose `act_for` claim names the grant, the grant's agency and a digest of the exact
query. The receiving service (`acting_for_grant`) refuses with 403 a token without that claim, a body whose
`agency` is not the claim's, and a body that is not the query the grant was checked for. A stolen service token
therefore searches nothing; a stolen `act_for` token replays one already-granted query of one agency until it
expires (`ACT_FOR_TTL_S`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from shared.auth import SERVICE, Principal
from shared.errors import Forbidden

ACT_FOR = "act_for"
ACT_FOR_TTL_S = 60
# Paging does not change what the grant opens: the same query, page after page.
_UNBOUND = frozenset({"cursor", "limit"})


def query_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of the body's fields that say what is read (JSON, keys sorted)."""
    bound = {k: v for k, v in body.items() if k not in _UNBOUND}
    return hashlib.sha256(json.dumps(bound, sort_keys=True, default=str).encode()).hexdigest()


def act_for_claims(grant_id: str, agency: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of a token that serves one query under one grant."""
    return {
        "roles": [SERVICE],
        "agency": agency,
        ACT_FOR: {"grant": grant_id, "agency": agency, "digest": query_digest(body)},
    }


@dataclass(frozen=True)
class GrantScope:
    grant_id: str
    agency: str


def check_acting_for(principal: Principal, body: Any) -> GrantScope:
    if not principal.has_role(SERVICE):
        raise Forbidden("requires role: service")
    claim = principal.claims.get(ACT_FOR)
    if not isinstance(claim, dict) or not claim.get("grant") or not isinstance(claim.get("agency"), str):
        raise Forbidden("an internal read needs the grant it serves: this token names none")
    if not isinstance(body, dict) or body.get("agency") != claim["agency"]:
        raise Forbidden("the query's agency is not the agency of the grant this token serves")
    if query_digest(body) != claim.get("digest"):
        raise Forbidden("the query is not the one the grant was checked for")
    return GrantScope(str(claim["grant"]), claim["agency"])


async def acting_for_grant(request: Request, principal: Principal) -> GrantScope:
    """The grant (and its agency) an internal read serves, checked against the body. Called first thing in the
    route, after the body is validated (a malformed body is its 422 for every caller, as on every route)."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    return check_acting_for(principal, body)

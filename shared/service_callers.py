"""Which of our services is calling: each calling service has its own identity, provisioned at deployment.

`alpr up` / `alpr migrate` make one service client per calling service (name `service:<service>`, its secret in
`<data folder>/service-<service>.json`, 0600); access puts the service's name in the token (`service` claim), and
access's own tokens carry the subject `service:access`. A receiving route names the callers it needs, so a stolen key
of one service reaches only the calls that service makes. A token of the older shared identity (no `service`
claim: compose and Kubernetes set-ups that still pass one `ALPR_SERVICE_CLIENT_ID`) is refused where a route names
its callers.
"""

from __future__ import annotations

from shared.auth import SERVICE, Principal
from shared.errors import Forbidden

CLIENT_NAME_PREFIX = "service:"
ACCESS_SUBJECT = "service:access"
SERVICE_CLAIM = "service"
# The services that call others with a client-credentials token (access signs its own).
CALLING_SERVICES = ("ingest", "hotlist")
HOTLIST_ONLY = frozenset({"hotlist"})
INGEST_ONLY = frozenset({"ingest"})
ACCESS_ONLY = frozenset({"access"})


def service_of_client(name: str | None) -> str | None:
    """The calling service a client record stands for (`service:<name>`), or None."""
    if name and name.startswith(CLIENT_NAME_PREFIX) and name[len(CLIENT_NAME_PREFIX) :] in CALLING_SERVICES:
        return name[len(CLIENT_NAME_PREFIX) :]
    return None


def caller_service(principal: Principal) -> str | None:
    if not principal.has_role(SERVICE):
        return None
    if principal.subject == ACCESS_SUBJECT:
        return "access"
    named = principal.claims.get(SERVICE_CLAIM)
    return named if isinstance(named, str) and named in CALLING_SERVICES else None


def check_caller(principal: Principal, allowed: frozenset[str]) -> str:
    who = caller_service(principal)
    if who not in allowed:
        raise Forbidden(f"this internal route answers only the {', '.join(sorted(allowed))} service's identity")
    return who

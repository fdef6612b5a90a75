"""Token verification and role checks, as FastAPI dependencies every service uses.

The one place that calls `jwt.decode`: algorithms pinned (python-jose would otherwise accept a public key as an
HMAC secret), audience and issuer checked, the key picked by `kid` from the access service's key set.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import JWTError, jwt

from shared.auth_metrics import AUTH_FAILURES
from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.keys import public_jwks
from shared.settings import Settings

# Roles a token may carry.
OFFICER = "officer"
SUPERVISOR = "supervisor"
AUDITOR = "auditor"
ADMIN = "admin"
AGENCY = "agency"  # an outside agency's API client
SERVICE = "service"  # one of our services calling another
ROLES = frozenset({OFFICER, SUPERVISOR, AUDITOR, ADMIN, AGENCY, SERVICE})
PERSON_ROLES = frozenset({OFFICER, SUPERVISOR, AUDITOR, ADMIN})
# Roles whose holders read ALPR data themselves, so their training must be current (policy: trained operators only).
TRAINED_ROLES = frozenset({OFFICER, SUPERVISOR})


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    subject: str
    roles: frozenset[str]
    agency: str | None = None
    badge: str | None = None
    scopes: frozenset[str] = frozenset()
    trained_until: datetime | None = None
    token_id: str | None = None
    expires_at: datetime | None = None
    session_id: str | None = None  # people's tokens: the login session (30-minute idle rule)
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_client(self) -> bool:
        """An API client (outside agency or one of our services), not a person."""
        return self.has_role(AGENCY, SERVICE)

    @property
    def needs_training(self) -> bool:
        return not self.is_client and self.has_role(*TRAINED_ROLES)

    def training_current(self, at: datetime | None = None) -> bool:
        return self.trained_until is not None and self.trained_until > (at or datetime.now(UTC))


class KeySource(Protocol):
    async def key_for(self, kid: str) -> dict[str, Any] | None: ...


class FolderKeySource:
    """Public keys from the keys folder the access service signs with (same machine, the embedded default).

    Re-read when an unknown kid arrives, so a rotation needs no restart, and at least every `cache_s`, so a key
    removed from the folder stops being trusted by then."""

    def __init__(self, keys_dir: Path, *, cache_s: float = 60.0) -> None:
        self.keys_dir = keys_dir
        self.cache_s = cache_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._read_at = 0.0

    async def key_for(self, kid: str) -> dict[str, Any] | None:
        if kid not in self._keys or time.monotonic() - self._read_at > self.cache_s:
            jwks = await asyncio.to_thread(public_jwks, self.keys_dir)
            self._keys = {k["kid"]: k for k in jwks["keys"]}
            self._read_at = time.monotonic()
        return self._keys.get(kid)


class RemoteJWKS:
    """The access service's JWKS over HTTP, cached; refetched when it ages or an unknown kid arrives."""

    def __init__(
        self,
        url: str,
        *,
        cache_s: int = 300,
        min_refetch_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.cache_s = cache_s
        self.min_refetch_s = min_refetch_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._ok_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self.min_refetch_s:
                return
            try:
                async with httpx.AsyncClient(timeout=3.0, transport=self.transport) as client:
                    resp = await client.get(self.url)
                    resp.raise_for_status()
                    self._keys = {k["kid"]: k for k in resp.json()["keys"] if "kid" in k}
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                # Old keys carry on through a short outage, not for ever: a key removed meanwhile must not stay
                # trusted because the list could not be re-read.
                if not self._keys or time.monotonic() - self._ok_at > 3 * self.cache_s:
                    self._keys = {}
                    raise Unavailable("token keys unavailable (access service unreachable)") from exc
            else:
                self._ok_at = time.monotonic()
            self._fetched_at = time.monotonic()

    async def key_for(self, kid: str) -> dict[str, Any] | None:
        stale = time.monotonic() - self._fetched_at > self.cache_s
        if stale or kid not in self._keys:
            await self._refresh()
        return self._keys.get(kid)


def key_source_for(settings: Settings) -> KeySource:
    if settings.jwks_url:
        return RemoteJWKS(settings.jwks_url, cache_s=settings.jwks_cache_s)
    return FolderKeySource(settings.keys_dir, cache_s=settings.jwks_cache_s)


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError):
        raise Unauthorized("invalid token: bad timestamp claim") from None


class TokenVerifier:
    def __init__(self, settings: Settings, source: KeySource | None = None) -> None:
        self.algorithms = [settings.jwt_algorithm]
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.leeway_s = settings.jwt_leeway_s
        self.source = source or key_source_for(settings)

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise Unauthorized("invalid token: malformed") from None
        if header.get("alg") not in self.algorithms:
            raise Unauthorized("invalid token: algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("invalid token: no key id")
        key = await self.source.key_for(kid)
        if key is None:
            raise Unauthorized("invalid token: unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require_exp": True, "require_sub": True, "leeway": self.leeway_s},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.JWTClaimsError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        except JWTError:
            raise Unauthorized("invalid token: bad signature") from None
        roles = claims.get("roles") or []
        scopes = claims.get("scope") or ""
        if not isinstance(roles, list) or not isinstance(scopes, str):
            raise Unauthorized("invalid token: malformed roles or scope")
        return Principal(
            subject=str(claims["sub"]),
            roles=frozenset(str(r) for r in roles),
            agency=claims.get("agency"),
            badge=claims.get("badge"),
            scopes=frozenset(scopes.split()),
            trained_until=_timestamp(claims.get("trained_until")),
            token_id=claims.get("jti"),
            expires_at=_timestamp(claims.get("exp")),
            session_id=claims.get("sid"),
            claims=claims,
        )


_bearer = HTTPBearer(auto_error=False, description="JWT from the access service")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    service = getattr(request.app.state, "service", "unknown")
    if credentials is None or credentials.scheme.lower() != "bearer":
        AUTH_FAILURES.labels(service, "no_token").inc()
        raise Unauthorized("not authenticated: bearer token required")
    verifier: TokenVerifier = request.app.state.verifier
    revocations = getattr(request.app.state, "revocations", None)
    try:
        principal = await verifier.verify(credentials.credentials)
        if revocations is not None:  # after any cache of verified tokens: a revocation is never cached away
            await revocations.check(principal)
    except Unauthorized:
        AUTH_FAILURES.labels(service, "bad_token").inc()
        raise
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str, trained: bool = True):  # type: ignore[no-untyped-def]
    """The one gate of every route: the principal holds any of `roles` (else 403), and a person who operates ALPR
    (officer, supervisor) has current training (else 403; 13.824 subd. 7(b): training before any use). Only
    `trained=False` routes that touch no data (log out) skip the training check; the route scan
    (tests/security/test_scan.py) holds every other route to it."""
    unknown = set(roles) - ROLES
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    async def _check(principal: CurrentPrincipal) -> Principal:
        _holding(principal, roles)
        if trained:
            check_training(principal)
        return principal

    _check.roles = frozenset(roles)  # type: ignore[attr-defined]  # lets tests and docs read what a route needs
    _check.trained = trained  # type: ignore[attr-defined]  # the route scan reads it
    return _check


def _holding(principal: Principal, roles: tuple[str, ...]) -> Principal:
    if not principal.has_role(*roles):
        raise Forbidden(f"requires role: {' or '.join(sorted(roles))}")
    return principal


async def authenticated(request: Request, *roles: str) -> Principal:
    """What `Depends(require_roles(*roles))` gives a route (the bearer token, verified, not revoked, holding one of
    `roles`, trained), for a request answered beside FastAPI's router (ingest's hottest post)."""
    principal = _holding(await current_principal(request, await _bearer(request)), roles)
    check_training(principal)
    return principal


def check_training(principal: Principal) -> None:
    """Officers and supervisors read ALPR data only while their ALPR training is current (clients pass)."""
    if principal.needs_training and not principal.training_current():
        why = (
            "no current ALPR training on record"
            if principal.trained_until is None
            else f"training expired on {principal.trained_until.isoformat()}"
        )
        raise Forbidden(
            f"ALPR training is not current ({why}): an untrained officer may not operate ALPR or read its data"
        )


def require_trained(*roles: str):  # type: ignore[no-untyped-def]
    """`require_roles(*roles)`: the training check is part of every role gate now (kept for its callers)."""
    return require_roles(*roles)

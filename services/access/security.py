"""Secrets and signatures: argon2 password hashes, client secrets, refresh tokens, TOTP, the signing key ring."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.keys import SigningKey, ensure_signing_key, sign_token
from shared.settings import Settings

TOTP_STEP_S = 30


class Passwords:
    """Argon2id hashing off the event loop (each hash costs tens of milliseconds of CPU by design)."""

    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.password_time_cost,
            memory_cost=settings.password_memory_kib,
            parallelism=settings.password_parallelism,
        )
        # Verified against when the user is unknown, so a miss costs as long as a hit (no user enumeration by time).
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    def hash_sync(self, password: str) -> str:
        return self.hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def _verify() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(_verify)

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 of a 256-bit random secret (client secrets, refresh tokens): no brute force to slow down, so a
    fast hash is enough and keeps the client-credentials grant cheap for our own services."""
    return hashlib.sha256(secret.encode()).hexdigest()


def digest_matches(stored: str, secret: str) -> bool:
    return hmac.compare_digest(stored, digest(secret))


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, name: str, issuer: str = "ALPR") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


def totp_step(secret: str, code: str, *, now: float | None = None, window: int = 1) -> int | None:
    """The time step whose code this is (allowing one step of clock drift either way), else None."""
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    current = int(now // TOTP_STEP_S)
    for step in range(current - window, current + window + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_S), code):
            return step
    return None


class KeyRing:
    """The newest key in the keys folder signs. The folder listing is checked on each use (cheap), the key parsed
    only when a new file appears: `alpr keys rotate` takes effect without a restart."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys_dir: Path = settings.keys_dir
        self._newest: str | None = None
        self._key: SigningKey | None = None

    def current(self) -> SigningKey:
        names = sorted(p.name for p in self.keys_dir.glob("*.pem")) if self.keys_dir.is_dir() else []
        newest = names[-1] if names else None
        if self._key is None or newest != self._newest:
            self._key = ensure_signing_key(self.keys_dir, self.settings.jwt_algorithm)
            self._newest = newest
        return self._key

    def sign(self, *, subject: str, ttl_s: int, claims: dict[str, Any]) -> str:
        return sign_token(
            self.current(),
            subject=subject,
            audience=self.settings.jwt_audience,
            issuer=self.settings.jwt_issuer,
            ttl_s=ttl_s,
            claims=claims,
        )


def epoch(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())

"""People, clients, training, and the token grants: password (+ TOTP), refresh (rotating), client credentials.

Functions take a session and flush; the route's session dependency commits. Refusals that must stay on record
(failed logins, refresh-token reuse) are committed by `events.refuse` before the error answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import events
from services.access.models import Client, LoginSession, RefreshToken, Revocation, TrainingRecord, User, utcnow
from services.access.security import KeyRing, Passwords, digest, digest_matches, epoch, new_secret, totp_step
from services.access.throttle import LoginThrottle
from shared.auth import AGENCY, PERSON_ROLES, SERVICE, Principal
from shared.auth_metrics import AUTH_FAILURES
from shared.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from shared.service_callers import SERVICE_CLAIM, service_of_client
from shared.settings import Settings

INVALID = "invalid credentials"


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    refresh_token: str | None = None


# ---- people, clients, training (the admin CLI and the admin API) ----


async def create_user(
    session: AsyncSession,
    passwords: Passwords,
    *,
    username: str,
    password: str,
    full_name: str,
    agency: str,
    roles: list[str],
    badge: str | None = None,
    totp_secret: str | None = None,
) -> User:
    bad = set(roles) - PERSON_ROLES
    if not roles or bad:
        raise BadRequest(f"people's roles are {sorted(PERSON_ROLES)}; got {sorted(bad) or 'none'}")
    if len(password) < 12:
        raise BadRequest("password must be at least 12 characters")
    same = col(User.username) == username
    if badge is not None:
        same = same | (col(User.badge) == badge)
    clash = await session.exec(select(User).where(same))
    if clash.first() is not None:
        raise Conflict(f"a user with username {username!r} or badge {badge!r} exists")
    user = User(
        username=username,
        badge=badge,
        full_name=full_name,
        agency=agency,
        roles=sorted(set(roles)),
        password_hash=await passwords.hash(password),
        totp_secret=totp_secret,
    )
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, name: str, *, lock: bool = False) -> User | None:
    """By user name or badge number (officers log in with their badge). `lock`: hold the row until commit, so
    parallel guesses are counted one after another and cannot slip past the lock-out."""
    stmt = select(User).where((User.username == name) | (User.badge == name))
    result = await session.exec(stmt.with_for_update() if lock else stmt)
    return result.first()


async def admin_exists(session: AsyncSession) -> bool:
    result = await session.exec(select(func.count()).select_from(User).where(col(User.roles).contains(["admin"])))
    return bool(result.one())


async def add_training(
    session: AsyncSession, user: User, *, course: str, completed_on: date, expires_on: date, recorded_by: str
) -> TrainingRecord:
    if expires_on <= completed_on:
        raise BadRequest("training must expire after it was completed")
    record = TrainingRecord(
        user_id=user.id, course=course, completed_on=completed_on, expires_on=expires_on, recorded_by=recorded_by
    )
    session.add(record)
    await session.flush()
    return record


async def trained_until(session: AsyncSession, user_id: uuid.UUID, now: datetime | None = None) -> datetime | None:
    """End of the user's current training: the latest expiry among completed courses (end of that day, UTC)."""
    now = now or utcnow()
    result = await session.exec(
        select(func.max(TrainingRecord.expires_on)).where(
            TrainingRecord.user_id == user_id, col(TrainingRecord.completed_on) <= now.date()
        )
    )
    last: date | None = result.one()
    if last is None:
        return None
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    return end if end > now else None


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    role: str,
    agency_name: str | None = None,
    ori: str | None = None,
    client_id: str | None = None,
    secret: str | None = None,
) -> tuple[Client, str]:
    """A client and its secret (shown once; only its hash is kept). `client_id` and `secret` are given only by a
    deployment that provisions the internal service client from its own secret store (docker compose)."""
    if role not in (AGENCY, SERVICE):
        raise BadRequest("a client's role is 'agency' or 'service'")
    if role == AGENCY and not (agency_name and ori):
        raise BadRequest("an agency client needs the agency's name and ORI")
    if secret is not None and len(secret) < 24:
        raise BadRequest("a client secret needs at least 24 characters")
    secret = secret or new_secret()
    client = Client(
        client_id=client_id or f"{role}-{uuid.uuid4().hex[:16]}",
        secret_hash=digest(secret),
        name=name,
        agency_name=agency_name,
        ori=ori,
        roles=[role],
    )
    session.add(client)
    await session.flush()
    return client, secret


async def client_secret_valid(session: AsyncSession, client_id: str, secret: str) -> bool:
    client = (await session.exec(select(Client).where(Client.client_id == client_id))).first()
    return client is not None and not client.disabled and digest_matches(client.secret_hash, secret)


# ---- tokens ----


async def _person_token(
    session: AsyncSession, settings: Settings, keys: KeyRing, user: User, login: LoginSession
) -> tuple[str, dict[str, Any]]:
    claims: dict[str, Any] = {"roles": user.roles, "agency": user.agency, "sid": str(login.id), "name": user.full_name}
    if user.badge:
        claims["badge"] = user.badge
    until = await trained_until(session, user.id)
    if until is not None:
        claims["trained_until"] = epoch(until)
    return keys.sign(subject=str(user.id), ttl_s=settings.access_token_ttl_s, claims=claims), claims


async def _new_refresh(session: AsyncSession, login: LoginSession) -> str:
    token = new_secret()
    session.add(RefreshToken(session_id=login.id, token_hash=digest(token)))
    await session.flush()
    return token


def _subject(user: User) -> Principal:
    """The audit's view of a person before a token exists."""
    return Principal(subject=str(user.id), roles=frozenset(user.roles), agency=user.agency, badge=user.badge)


async def password_grant(
    session: AsyncSession,
    settings: Settings,
    passwords: Passwords,
    keys: KeyRing,
    request: Request,
    *,
    username: str,
    password: str,
    totp: str | None,
    throttle: LoginThrottle | None = None,
) -> Issued:
    """One answer for every refusal (unknown, wrong password, wrong or missing second factor, disabled, locked):
    "invalid credentials", so the endpoint tells no one which accounts exist or which password was right. Every
    refusal counts against the source (services/access/throttle.py); the audit entry keeps the real reason."""
    now = utcnow()
    source = events.source_ip(request) or "unknown"
    user = await find_user(session, username, lock=True)
    epoch = unlock_epoch(user)
    if throttle is not None:
        wait = await throttle.wait_s(source, username, epoch)
        if wait:
            # Counted, not audited one by one: a guessing flood must not fill the chain.
            AUTH_FAILURES.labels("access", "login_throttled").inc()
            raise TooManyRequests(f"too many failed logins from this address: retry in {wait} s", retry_after_s=wait)
    valid = await passwords.verify(user.password_hash if user else None, password)
    step: int | None = None
    why = None
    if user is None:
        why = "unknown user"
    elif user.disabled:
        why = "account disabled"
    elif user.locked_until is not None and user.locked_until > now:
        why = "account locked"
    elif not valid:
        why = "wrong password"
    elif settings.require_second_factor and not user.totp_secret:
        why = "no second factor enrolled"
    elif user.totp_secret:
        if not totp:
            why = "totp missing"
        else:
            step = totp_step(user.totp_secret, totp.strip())
            if step is None:
                why = "wrong TOTP code"
            elif user.totp_last_step is not None and step <= user.totp_last_step:
                why = "TOTP code already used"
    if why is not None:
        if throttle is not None:
            await throttle.failed(source, username, epoch)
        if user is None:
            raise await events.refuse(
                session, Unauthorized(INVALID), "auth.login", request=request, actor=username, outcome="failed",
                details={"grant": "password", "why": why},
            )  # fmt: skip
        user.failed_logins += 1
        session.add(user)
        raise await events.refuse(
            session, Unauthorized(INVALID), "auth.login", request=request, principal=_subject(user),
            outcome="failed", details={"why": why, "attempt": user.failed_logins},
        )  # fmt: skip
    assert user is not None
    who = _subject(user)

    user.failed_logins = 0
    user.locked_until = None
    if step is not None:
        user.totp_last_step = step
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
    session.add(user)
    login = LoginSession(
        user_id=user.id,
        expires_at=now + timedelta(seconds=settings.session_max_s),
        source_ip=events.source_ip(request),
    )
    session.add(login)
    await session.flush()
    token, claims = await _person_token(session, settings, keys, user, login)
    refresh = await _new_refresh(session, login)
    await events.record(
        session, "auth.login", request=request, principal=who,
        details={"grant": "password", "second_factor": step is not None, "session_id": str(login.id),
                 "trained": "trained_until" in claims},
    )  # fmt: skip
    return Issued(token, settings.access_token_ttl_s, refresh)


async def publish_revocation(session: AsyncSession, kind: str, value: str, reason: str) -> None:
    """Every service refuses the tokens this names within seconds (shared/revocations.py)."""
    session.add(Revocation(kind=kind, value=value, reason=reason))
    await session.flush()


async def _end_session(session: AsyncSession, login: LoginSession, reason: str) -> None:
    if login.ended_at is None:
        login.ended_at = utcnow()
        login.end_reason = reason
        session.add(login)
        # Its access tokens too, on every service, not only its refresh tokens here.
        session.add(Revocation(kind="session", value=str(login.id), reason=reason))
    # Every refresh token of the family dies with it.
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.session_id) == login.id, col(RefreshToken.spent_at).is_(None))
        .values(spent_at=utcnow())
    )
    await session.flush()


def _idle(settings: Settings, login: LoginSession, now: datetime) -> bool:
    return now - login.last_seen_at > timedelta(seconds=settings.session_idle_s)


async def refresh_grant(
    session: AsyncSession, settings: Settings, keys: KeyRing, request: Request, *, refresh_token: str
) -> Issued:
    now = utcnow()
    # Locked: two concurrent uses of one refresh token must not both succeed (the second is a reuse).
    stored = (
        await session.exec(
            select(RefreshToken).where(RefreshToken.token_hash == digest(refresh_token)).with_for_update()
        )
    ).first()
    if stored is None:
        raise await events.refuse(
            session, Unauthorized("invalid refresh token"), "auth.refresh", request=request, outcome="failed"
        )
    login = await session.get(LoginSession, stored.session_id)
    assert login is not None
    user = await session.get(User, login.user_id)
    assert user is not None
    who = _subject(user)
    ids = {"object_type": "session", "object_ids": [str(login.id)]}
    if stored.spent_at is not None:
        if login.ended_at is None:
            # A spent token came back: someone holds a copy. End the whole family (RFC 6819 5.2.2.3).
            await _end_session(session, login, "refresh token reused")
            raise await events.refuse(
                session, Unauthorized("refresh token already used: the session is revoked"), "auth.refresh",
                request=request, principal=who, details={"why": "reuse"}, **ids,
            )  # fmt: skip
        raise await events.refuse(
            session, Unauthorized(f"session ended ({login.end_reason})"), "auth.refresh", request=request,
            principal=who, **ids,
        )  # fmt: skip
    if login.ended_at is not None:
        raise await events.refuse(
            session, Unauthorized(f"session ended ({login.end_reason})"), "auth.refresh", request=request,
            principal=who, **ids,
        )  # fmt: skip
    reason = None
    if _idle(settings, login, now):
        reason = f"idle for more than {settings.session_idle_s // 60} minutes"
    elif login.expires_at <= now:
        reason = "session reached its maximum length"
    elif user.disabled:
        reason = "account disabled"
    elif user.locked_until is not None and user.locked_until > now:
        reason = "account locked"
    if reason is not None:
        await _end_session(session, login, reason)
        raise await events.refuse(
            session, Unauthorized(f"session ended: {reason}; log in again"), "auth.refresh", request=request,
            principal=who, **ids,
        )  # fmt: skip
    stored.spent_at = now
    session.add(stored)
    login.last_seen_at = now
    session.add(login)
    token, _ = await _person_token(session, settings, keys, user, login)
    new_refresh = await _new_refresh(session, login)
    await events.record(session, "auth.refresh", request=request, principal=who, **ids)
    return Issued(token, settings.access_token_ttl_s, new_refresh)


async def client_credentials_grant(
    session: AsyncSession, settings: Settings, keys: KeyRing, request: Request, *, client_id: str, client_secret: str
) -> Issued:
    client = (await session.exec(select(Client).where(Client.client_id == client_id))).first()
    if client is None or client.disabled or not digest_matches(client.secret_hash, client_secret):
        raise await events.refuse(
            session, Unauthorized(INVALID), "auth.client", request=request, actor=client_id, outcome="failed",
            details={"grant": "client_credentials"},
        )  # fmt: skip
    claims: dict[str, Any] = {"roles": client.roles, "client_id": client.client_id, "name": client.name}
    if client.ori:
        claims["agency"] = client.ori
    if client.agency_name:
        claims["agency_name"] = client.agency_name
    if SERVICE in client.roles and (own := service_of_client(client.name)):
        claims[SERVICE_CLAIM] = own  # which service calls: each receiving route names the callers it needs
    token = keys.sign(subject=f"client:{client.client_id}", ttl_s=settings.access_token_ttl_s, claims=claims)
    await events.record(
        session, "auth.client", request=request, actor=f"client:{client.client_id}", object_type="client",
        object_ids=[client.client_id], details={"grant": "client_credentials", "roles": client.roles},
    )  # fmt: skip
    return Issued(token, settings.access_token_ttl_s)


# ---- sessions on access-service endpoints ----


async def check_session(session: AsyncSession, settings: Settings, principal: Principal, request: Request) -> None:
    """A person's token is good on the access service only while its session lives: not logged out, not revoked,
    not idle for 30 minutes. Each use counts as activity."""
    if principal.session_id is None:
        return
    try:
        sid = uuid.UUID(principal.session_id)
    except ValueError:
        raise Unauthorized("invalid token: bad session id") from None
    login = await session.get(LoginSession, sid)
    now = utcnow()
    if login is None or login.ended_at is not None:
        reason = login.end_reason if login is not None else "unknown session"
        raise Unauthorized(f"session ended ({reason}); log in again")
    if _idle(settings, login, now):
        await _end_session(session, login, f"idle for more than {settings.session_idle_s // 60} minutes")
        raise await events.refuse(
            session, Unauthorized("session ended after 30 idle minutes; log in again"), "auth.session",
            request=request, principal=principal, object_type="session", object_ids=[str(sid)],
        )  # fmt: skip
    if now - login.last_seen_at > timedelta(seconds=30):  # at most one write per half minute per session
        login.last_seen_at = now
        session.add(login)
        await session.flush()


async def logout(session: AsyncSession, principal: Principal, request: Request) -> bool:
    if principal.session_id is None:
        return False
    login = await session.get(LoginSession, uuid.UUID(principal.session_id))
    if login is None:
        raise NotFound("session not found")
    await _end_session(session, login, "logged out")
    await events.record(
        session, "auth.logout", request=request, principal=principal, object_type="session", object_ids=[str(login.id)]
    )
    return True


def unlock_epoch(user: User | None) -> str:
    """The throttle's key for the account since its last unlock (services/access/throttle.py)."""
    return user.unlocked_at.isoformat() if user is not None and user.unlocked_at is not None else ""


async def unlock(session: AsyncSession, user: User) -> None:
    """Lift the account's log-in throttle (every source's failures on it), on every access replica at once."""
    user.failed_logins = 0
    user.locked_until = None
    user.unlocked_at = utcnow()
    session.add(user)
    await session.flush()


# ---- disabling and re-keying identities (admin API and CLI); each publishes a revocation ----


async def _end_live_sessions(session: AsyncSession, user: User, reason: str) -> None:
    live = await session.exec(
        select(LoginSession).where(LoginSession.user_id == user.id, col(LoginSession.ended_at).is_(None))
    )
    for login in live.all():
        await _end_session(session, login, reason)


async def set_user_disabled(session: AsyncSession, user: User, disabled: bool) -> None:
    user.disabled = disabled
    session.add(user)
    if disabled:
        await _end_live_sessions(session, user, "account disabled")
        await publish_revocation(session, "subject", str(user.id), "account disabled")
    await session.flush()


async def set_password(session: AsyncSession, passwords: Passwords, user: User, password: str) -> None:
    """A new password (an administrator's reset): every session and token of the old one ends everywhere."""
    if len(password) < 12:
        raise BadRequest("password must be at least 12 characters")
    user.password_hash = await passwords.hash(password)
    session.add(user)
    await _end_live_sessions(session, user, "password changed")
    await publish_revocation(session, "subject", str(user.id), "password changed")


async def find_client(session: AsyncSession, client_id: str, *, lock: bool = False) -> Client:
    query = select(Client).where(Client.client_id == client_id)
    client = (await session.exec(query.with_for_update() if lock else query)).first()
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


async def set_client_disabled(session: AsyncSession, client: Client, disabled: bool) -> None:
    client.disabled = disabled
    session.add(client)
    if disabled:
        await publish_revocation(session, "subject", f"client:{client.client_id}", "client disabled")
    await session.flush()


async def rotate_client_secret(session: AsyncSession, client: Client) -> str:
    """A new secret (shown once); tokens issued with the old one stop working everywhere."""
    secret = new_secret()
    client.secret_hash = digest(secret)
    session.add(client)
    await publish_revocation(session, "subject", f"client:{client.client_id}", "client secret rotated")
    return secret

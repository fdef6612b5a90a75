"""Routes of sign-in and administration: the public keys, tokens and logout; people and API clients (an admin's,
in the admin's own agency)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from services.access import events, identity
from services.access.deps import (
    Admin,
    Anyone,
    KeysDep,
    PasswordsDep,
    SettingsDep,
)
from services.access.models import Client, User
from services.access.schemas import (
    ClientOut,
    TokenOut,
    UserOut,
)
from shared.auth import SERVICE
from shared.db import SessionDep
from shared.errors import BadRequest, NotFound
from shared.keys import public_jwks
from shared.scoping import Scope, Scoped
from shared.text import CleanInput

router = APIRouter()


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that verify our tokens")
async def jwks(request: Request) -> dict[str, Any]:
    # Read per request: a rotated key is served without a restart (verifiers cache it).
    keys: dict[str, Any] = await asyncio.to_thread(public_jwks, request.app.state.settings.keys_dir)
    return keys


# ---- tokens ----


@router.post(
    "/v1/token",
    tags=["auth"],
    summary="OAuth2 token endpoint: password (+ totp), refresh_token, client_credentials grants",
    response_model=TokenOut,
    response_model_exclude_none=True,
)
async def token(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    passwords: PasswordsDep,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    totp: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> TokenOut:
    response.headers["Cache-Control"] = "no-store"
    if grant_type == "password":
        if not username or not password:
            raise BadRequest("the password grant needs `username` and `password`")
        issued = await identity.password_grant(
            session, settings, passwords, keys, request, username=username, password=password, totp=totp,
            throttle=request.app.state.login_throttle,
        )  # fmt: skip
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise BadRequest("the refresh_token grant needs `refresh_token`")
        issued = await identity.refresh_grant(session, settings, keys, request, refresh_token=refresh_token)
    elif grant_type == "client_credentials":
        if not client_id or not client_secret:
            raise BadRequest("the client_credentials grant needs `client_id` and `client_secret`")
        issued = await identity.client_credentials_grant(
            session, settings, keys, request, client_id=client_id, client_secret=client_secret
        )
    else:
        raise BadRequest("unsupported grant_type: use password, refresh_token or client_credentials")
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in, refresh_token=issued.refresh_token)


class LogoutOut(BaseModel):
    session_ended: bool


@router.post("/v1/logout", tags=["auth"], summary="End the caller's session: its refresh tokens die")
async def logout(request: Request, session: SessionDep, principal: Anyone) -> LogoutOut:
    return LogoutOut(session_ended=await identity.logout(session, principal, request))


# ---- people (administrators) ----


async def _user_out(session: SessionDep, user: User) -> UserOut:
    return UserOut(
        id=user.id, username=user.username, badge=user.badge, full_name=user.full_name, agency=user.agency,
        roles=user.roles, second_factor=user.totp_secret is not None, locked_until=user.locked_until,
        disabled=user.disabled, trained_until=await identity.trained_until(session, user.id),
    )  # fmt: skip


@router.get("/v1/users", tags=["people"], summary="People, their lock-out and training state")
async def list_users(session: SessionDep, _: Admin, scope: Scoped) -> list[UserOut]:
    # The administrator's own agency's people only: another agency's names, badges and roles are not theirs to see.
    users = await session.exec(scope.where(select(User), col(User.agency)).order_by(col(User.username)))
    return [await _user_out(session, u) for u in users]


@router.post("/v1/users/{user_id}/unlock", tags=["people"], summary="Lift a lock-out")
async def unlock_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.unlock(session, user)
    await events.record(
        session, "user.unlock", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


async def _admin_user(session: SessionDep, user_id: uuid.UUID, scope: Scope) -> User:
    """A person of the administrator's own agency: another agency's people are its administrators' to manage (a
    password reset by another agency's admin would open that agency's data to them)."""
    return scope.check(await session.get(User, user_id, with_for_update=True), "user")


async def _set_disabled(
    user_id: uuid.UUID, disabled: bool, request: Request, session: SessionDep, principal: Admin, scope: Scope
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.set_user_disabled(session, user, disabled)
    action = "user.disable" if disabled else "user.enable"
    await events.record(
        session, action, request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


@router.post(
    "/v1/users/{user_id}/disable",
    tags=["people"],
    summary="Disable a person: every session and token of theirs stops working everywhere within seconds",
)
async def disable_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    return await _set_disabled(user_id, True, request, session, principal, scope)


@router.post("/v1/users/{user_id}/enable", tags=["people"], summary="Re-enable a disabled person")
async def enable_user(
    user_id: uuid.UUID, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> UserOut:
    return await _set_disabled(user_id, False, request, session, principal, scope)


class PasswordIn(CleanInput):
    password: str = Field(min_length=12, max_length=1024)


@router.post(
    "/v1/users/{user_id}/password",
    tags=["people"],
    summary="Set a person's password: their sessions and tokens end everywhere within seconds",
)
async def set_user_password(
    user_id: uuid.UUID,
    body: PasswordIn,
    request: Request,
    session: SessionDep,
    passwords: PasswordsDep,
    principal: Admin,
    scope: Scoped,
) -> UserOut:
    user = await _admin_user(session, user_id, scope)
    await identity.set_password(session, passwords, user, body.password)
    await events.record(
        session, "user.password", request=request, principal=principal, object_type="user", object_ids=[str(user.id)]
    )
    return await _user_out(session, user)


def _client_out(client: Client, secret: str | None = None) -> ClientOut:
    return ClientOut(
        client_id=client.client_id, name=client.name, roles=client.roles, ori=client.ori, disabled=client.disabled,
        client_secret=secret,
    )  # fmt: skip


async def _admin_client(session: SessionDep, client_id: str, scope: Scope) -> Client:
    """An outside client registered to the administrator's own agency (its ORI). The service identity is no
    account: it is provisioned on the host and rotated by the operator's CLI only, so through the API it does not
    exist (an admin who could rotate it would read every agency's data as the service)."""
    try:
        client = await identity.find_client(session, client_id, lock=True)
    except NotFound:
        raise NotFound("no such client") from None
    if SERVICE in client.roles:
        raise NotFound("no such client")
    return scope.check(client, "client", custodian=client.ori or "")


async def _set_client_disabled(
    client_id: str, disabled: bool, request: Request, session: SessionDep, principal: Admin, scope: Scope
) -> ClientOut:
    client = await _admin_client(session, client_id, scope)
    await identity.set_client_disabled(session, client, disabled)
    action = "client.disable" if disabled else "client.enable"
    await events.record(
        session, action, request=request, principal=principal, object_type="client", object_ids=[client_id]
    )
    return _client_out(client)


@router.post(
    "/v1/clients/{client_id}/disable",
    tags=["clients"],
    summary="Disable an API client: its tokens stop working everywhere within seconds",
)
async def disable_client(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    return await _set_client_disabled(client_id, True, request, session, principal, scope)


@router.post("/v1/clients/{client_id}/enable", tags=["clients"], summary="Re-enable a disabled API client")
async def enable_client(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    return await _set_client_disabled(client_id, False, request, session, principal, scope)


@router.post(
    "/v1/clients/{client_id}/rotate-secret",
    tags=["clients"],
    summary="A new client secret (shown once); tokens got with the old one stop working everywhere",
)
async def rotate_client_secret(
    client_id: str, request: Request, session: SessionDep, principal: Admin, scope: Scoped
) -> ClientOut:
    client = await _admin_client(session, client_id, scope)
    secret = await identity.rotate_client_secret(session, client)
    await events.record(
        session, "client.rotate_secret", request=request, principal=principal, object_type="client",
        object_ids=[client_id],
    )  # fmt: skip
    return _client_out(client, secret)

"""The access service under test: real PostgreSQL and S3, cheap argon2 (tests only), people made in its database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from services.access import identity
from services.access.main import create_app
from services.access.security import new_totp_secret
from shared.settings import Settings
from tests.support.apps import running

# Argon2 at its floor: hashing cost is not what these tests are about (production refuses these values).
CHEAP_ARGON2 = {"password_time_cost": 1, "password_memory_kib": 8, "password_parallelism": 1}
PASSWORD = "correct horse battery"
AGENCY_ORI = "MN0271200"


@pytest.fixture(scope="session")
def access_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=CHEAP_ARGON2)


@dataclass
class Person:
    id: str
    username: str
    badge: str | None
    roles: list[str]
    agency: str
    totp_secret: str | None = None

    def totp_now(self) -> str:
        assert self.totp_secret
        return pyotp.TOTP(self.totp_secret).now()


@dataclass
class Access:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def person(
        self,
        *roles: str,
        trained: bool = True,
        totp: bool = False,
        agency: str = AGENCY_ORI,
        badge: bool = True,
    ) -> Person:
        tag = uuid.uuid4().hex[:8]
        secret = new_totp_secret() if totp else None
        async with self.app.state.sessionmaker() as session:
            user = await identity.create_user(
                session,
                self.app.state.passwords,
                username=f"user-{tag}",
                password=PASSWORD,
                full_name=f"Officer {tag}",
                agency=agency,
                roles=list(roles or ("officer",)),
                badge=f"B{tag}" if badge else None,
                totp_secret=secret,
            )
            if trained:
                today = date.today()
                await identity.add_training(
                    session,
                    user,
                    course="ALPR operation and data policy",
                    completed_on=today - timedelta(days=30),
                    expires_on=today + timedelta(days=335),
                    recorded_by="test",
                )
            await session.commit()
        return Person(str(user.id), user.username, user.badge, user.roles, agency, secret)

    async def agency_client(self, name: str = "Robbinsdale PD", ori: str = "MN0270900") -> tuple[str, str]:
        async with self.app.state.sessionmaker() as session:
            client, secret = await identity.create_client(session, name=name, role="agency", agency_name=name, ori=ori)
            await session.commit()
        return client.client_id, secret

    async def login(self, person: Person, *, password: str = PASSWORD, **extra: str) -> httpx.Response:
        data = {"grant_type": "password", "username": person.badge or person.username, "password": password, **extra}
        if person.totp_secret and "totp" not in extra:
            data["totp"] = person.totp_now()
        return await self.client.post("/v1/token", data=data)

    async def token(self, person: Person) -> str:
        resp = await self.login(person)
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def client_token(self, client_id: str, secret: str) -> str:
        resp = await self.client.post(
            "/v1/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def audit(self, auditor_token: str, **params: Any) -> list[dict[str, Any]]:
        resp = await self.client.get("/v1/audit", params={"limit": 500, **params}, headers=bearer(auditor_token))
        assert resp.status_code == 200, resp.text
        entries: list[dict[str, Any]] = resp.json()["entries"]
        return entries


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


AccessFactory = Callable[..., Any]


@pytest.fixture
async def access(access_settings: Settings) -> AsyncIterator[Access]:
    app = create_app(access_settings)
    async with running(app) as client:
        yield Access(app, client)

"""The async engine (SQLModel on asyncpg) and the session dependency.

One engine per process, built in the app's lifespan. `SessionDep` commits when the request succeeds and rolls
back when it fails; service functions only flush.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.errors import Unavailable
from shared.settings import Settings

# One PostgreSQL schema per service: ownership shows in every table name.
SERVICE_SCHEMAS = ("access", "ingest", "recognition", "hotlist", "audit")

# Set before any model is imported so constraint names are stable across migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


def create_engine(settings: Settings, *, pool_size: int | None = None, url: str | None = None) -> AsyncEngine:
    """The engine on `url` (the read-only standby's), else on ALPR_DATABASE_URL."""
    url = url or settings.database_url
    if not url:
        raise RuntimeError("ALPR_DATABASE_URL is not set (the runner sets it when it starts PostgreSQL)")
    return create_async_engine(
        url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_s,
        connect_args={"timeout": settings.db_connect_timeout_s},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] | None = getattr(request.app.state, "sessionmaker", None)
    if maker is None:
        raise Unavailable("database not configured")
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit is never answered 200.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session on the read-only standby (`ALPR_DATABASE_URL_READONLY`) when one is set, else on the primary: for
    figures and reports that return no stored read (a search that does writes its audit entry in its transaction,
    so it stays on the primary). Nothing is written through it."""
    maker: async_sessionmaker[AsyncSession] | None = getattr(request.app.state, "read_sessionmaker", None)
    if maker is None:
        raise Unavailable("database not configured")
    async with maker() as session:
        try:
            yield session
        finally:
            await session.rollback()


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]

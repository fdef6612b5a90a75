"""The access service's audit entries: one helper so every entry carries the service, source address and caller."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared import audit
from shared.audit import client_ip
from shared.auth import Principal
from shared.errors import AppError

SERVICE = "access"


def source_ip(request: Request | None) -> str | None:
    return client_ip(request) if request is not None else None


async def record(
    session: AsyncSession,
    action: str,
    *,
    request: Request | None = None,
    principal: Principal | None = None,
    **fields: Any,
) -> audit.AuditEntry:
    return await audit.record(
        session, service=SERVICE, action=action, principal=principal, source_ip=source_ip(request), **fields
    )


async def refuse(
    session: AsyncSession,
    error: AppError,
    action: str,
    *,
    request: Request | None = None,
    principal: Principal | None = None,
    **fields: Any,
) -> AppError:
    """Record a refusal and commit it before the error answers: a refused attempt stays in the log even though
    the request's own work rolls back."""
    details = dict(fields.pop("details", None) or {})
    details["reason"] = str(error.detail)
    await record(
        session, action, request=request, principal=principal, outcome=fields.pop("outcome", "denied"),
        details=details, **fields,
    )  # fmt: skip
    await session.commit()
    return error

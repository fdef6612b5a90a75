"""One error hierarchy and one set of handlers: every failure reaches clients as `{"detail": ...}`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = structlog.get_logger(__name__)


class AppError(Exception):
    status_code = 400

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401

    def __init__(self, detail: Any = "not authenticated") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Gone(AppError):
    status_code = 410


class PayloadTooLarge(AppError):
    status_code = 413


class Unprocessable(AppError):
    status_code = 422


class Unavailable(AppError):
    """A dependency (PostgreSQL, the object store, another service) is down: the client should retry."""

    status_code = 503

    def __init__(self, detail: Any, *, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path, header, then the field names")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of every service: `detail` says what is wrong, in words; when the request did not match
    its schema, as one item per problem; where a caller needs fields to act on (a failed BCA sync), an object with
    a `message`."""

    detail: str | list[ErrorItem] | dict[str, Any]


_STATUS_TEXT = {
    400: "The request cannot be understood (wrong content type, a malformed form)",
    401: "No valid bearer token (or agent token)",
    403: "The caller's role, agency or grant does not allow this",
    404: "No such object (or not one of the caller's agency)",
    409: "The object's state forbids this now (a retry may be answered as the first time)",
    413: "The body (or a file in it) is over its limit",
    422: "A value is invalid, out of range or cannot be stored",
    503: "A dependency (PostgreSQL, the object store, another service) is down: retry after `Retry-After`",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, all of the one error shape."""
    return {s: {"model": ErrorBody, "description": _STATUS_TEXT[s]} for s in statuses}


# What any API route may answer besides its success (routes add their own, such as 410 or 429, with `responses=`).
API_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422, 503)


def is_bad_value(exc: BaseException) -> bool:
    """PostgreSQL (or its driver) refused a value the client sent: a NUL in text, a number or date out of range.
    Not an outage: the same input fails every time, so it is the client's 422, never a 503 to retry forever."""
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):  # class 22: data exception
        return True
    # The driver's own refusal to encode an argument (an integer beyond int64...): an InterfaceError and ValueError.
    return isinstance(cause, asyncpg.InterfaceError) and isinstance(cause, ValueError)


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    state = getattr(cause, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def is_poison(exc: BaseException) -> bool:
    """The values of one item failed the statement (a value refused, a constraint, a limit such as an index row too
    large): the same item fails every time, so it is refused or quarantined alone. Other database errors (an
    outage, a permission, a missing table) are the system's, retried rather than blamed on the item."""
    return is_bad_value(exc) or (_sqlstate(exc) or "")[:2] in ("23", "54")


def _json(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def is_database_outage(exc: BaseException) -> bool:
    """PostgreSQL is down or the connection broke: the same work may succeed later (503, retry)."""
    if is_bad_value(exc):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # The server refusing for now: a connection exception (08), too many connections (53), or shutting down, starting
    # up, restarting (57P01-57P03: a primary replaced behind its address answers these for a moment).
    if (_sqlstate(exc) or "")[:2] in ("08", "53", "57"):
        return True
    return isinstance(exc, ConnectionError | asyncio.TimeoutError | OSError)


OUTAGE_GAP_S = 30.0  # database errors closer together than this belong to one outage: one warning for it


class _OutageLog:
    """One warning per outage, not one per request: during a cut every request fails the same way (each answered
    503), and hundreds of identical lines hide the one that says when it began."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.count = 0

    def __call__(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.last is None or now - self.last > OUTAGE_GAP_S:
            log.warning("dependency_unavailable", error=repr(exc)[:300], note="further errors of this outage: debug")
            self.count = 0
        else:
            log.debug("dependency_unavailable", error=repr(exc)[:300])
        self.last = now
        self.count += 1


outage_log = _OutageLog()


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return _json(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _json(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return _json(422, errors)

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # Handled here rather than as an unexpected error: not a 500, and not a stack trace in the server log.
        if is_bad_value(exc):
            log.info("value_refused_by_database", error=str(exc.orig)[:300])
            return _json(422, "a value in the request cannot be stored (out of range, or a control character)")
        if is_database_outage(exc):
            outage_log(exc)
            return _json(503, "database unavailable, retry later", {"Retry-After": "5"})
        log.error("database_error", error=repr(exc)[:500])
        return _json(500, "internal error")

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client went away before its body arrived (a car losing its link, a load tool stopping): nothing was
        # stored, nobody reads the answer, and it is not a server error worth a stack trace.
        log.info("client_disconnected")
        return _json(400, "the client disconnected before the request body was read")

    @app.exception_handler(OSError)
    async def _connection_error(request: Request, exc: OSError) -> JSONResponse:
        # A connection refused or a socket gone (PostgreSQL cut before the driver wraps the error): answered here, by
        # the exception middleware, not by the last-resort handler below, which Starlette re-raises to the server
        # after answering (uvicorn then logs a traceback per request).
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace to the client; the log has it, under the request id.
        if is_bad_value(exc):
            log.info("value_refused_by_database", error=repr(exc)[:300])
            return _json(422, "a value in the request cannot be stored (out of range, or a control character)")
        if is_database_outage(exc):
            outage_log(exc)
            return _json(503, "database unavailable, retry later", {"Retry-After": "5"})
        log.exception("unhandled_error")
        return _json(500, "internal error")


class TooManyRequests(AppError):
    """The caller must wait (failed logins from its source, a limited public report)."""

    status_code = 429

    def __init__(self, detail: Any, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})

"""A unit's MDC posts the car's position on its own, without a read, so that its car-mounted camera agent's reads
without GPS can take it (docs/ingest.md, "Where a read was"). Only the latest positions are kept: a police car's
position is not a subject's data, but it is kept no longer than the agents' import needs it
(`ALPR_INGEST_UNIT_POSITION_KEEP_S`), deleted at the unit's next post and by the worker's round."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import AwareDatetime, Field, model_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.ingest import service
from services.ingest.deps import Ctx, Officer
from services.ingest.schemas import _ID
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.settings import Settings
from shared.text import CleanInput

router = APIRouter()
_WINDOW = "CAST(:at AS timestamptz) - CAST(:w AS interval) AND CAST(:at AS timestamptz) + CAST(:w AS interval)"


class UnitPositionIn(CleanInput):
    """Where the car was, and when (the MDC's GPS fix)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    at: AwareDatetime = Field(description="Time of the fix with its zone (ISO 8601)")

    @model_validator(mode="after")
    def _a_fix(self) -> UnitPositionIn:
        # alprd's rule too: a receiver without a fix reports 0,0, which is not where a Minnesota car is.
        if self.lat == 0 and self.lon == 0:
            raise ValueError("0,0 is a GPS receiver without a fix, not a position")
        return self


def _keep(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.ingest_unit_position_keep_s)


@router.post(
    "/v1/units/{unit}/position",
    tags=["shifts"],
    status_code=204,
    response_class=Response,
    summary="The car's position from its MDC, without a read (for its camera agents' reads without GPS)",
)
async def post_position(
    unit: Annotated[str, Path(pattern=_ID)], body: UnitPositionIn, principal: Officer, ctx: Ctx
) -> Response:
    settings, now = ctx.settings, service.now_utc()
    if not principal.training_current(now):
        raise Forbidden("no current ALPR training on record for this officer")
    shift = await service.open_shift(ctx, unit, principal.agency)
    if shift is None:
        raise Conflict(f"unit {unit} is offline: no open shift in your agency")
    if shift.officer != principal.subject:
        raise Forbidden(f"unit {unit}'s shift belongs to another officer")
    skew = timedelta(seconds=settings.ingest_clock_skew_s)
    if body.at > now + skew:
        raise Unprocessable(f"at is in the future (clock skew allowed: {settings.ingest_clock_skew_s:.0f} s)")
    if body.at < now - _keep(settings):
        raise Unprocessable(f"at is older than the {settings.ingest_unit_position_keep_s:.0f} s positions are kept")
    if body.at < shift.started_at - skew:
        raise Unprocessable("at is before the unit's shift began")
    async with ctx.sessionmaker() as session:
        await session.execute(
            text(
                "INSERT INTO ingest.unit_positions (agency, unit, at, lat, lon) "
                "VALUES (:agency, :unit, :at, :lat, :lon) "
                "ON CONFLICT (agency, unit, at) DO UPDATE SET lat = excluded.lat, lon = excluded.lon"
            ),
            {"agency": shift.agency or "", "unit": unit, "at": body.at, "lat": body.lat, "lon": body.lon},
        )
        await forget_old_positions(session, settings)
        await session.commit()
    return Response(status_code=204)


async def forget_old_positions(session: AsyncSession, settings: Settings) -> int:
    """Every unit's positions older than the keep time go (the worker's round, and each post)."""
    result = await session.execute(
        text("DELETE FROM ingest.unit_positions WHERE at < now() - CAST(:keep AS interval)"),
        {"keep": _keep(settings)},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def position_near(
    conn: AsyncConnection, agency: str, unit: str, at: datetime, window: timedelta
) -> tuple[float, float] | None:
    """The unit's MDC position nearest `at` within `window` either side: posted on its own (above) or with one of
    its MDC's reads (posted to /v1/reads, not by an agent). Scoped by the agent's agency: unit names are per agency."""
    found = (
        await conn.execute(
            text(
                "SELECT lat, lon FROM ("
                "SELECT lat, lon, at FROM ingest.unit_positions WHERE agency = :agency AND unit = :unit "
                f"AND at BETWEEN {_WINDOW} "
                "UNION ALL "
                "SELECT lat, lon, captured_at FROM ingest.reads WHERE agency = :agency AND unit = :unit "
                f"AND captured_at BETWEEN {_WINDOW} "
                "AND lat IS NOT NULL AND lon IS NOT NULL AND client_read_id NOT LIKE 'agent:%'"
                ") AS p ORDER BY abs(extract(epoch FROM p.at - CAST(:at AS timestamptz))) LIMIT 1"
            ),
            {"agency": agency, "unit": unit, "at": at, "w": window},
        )
    ).first()
    return None if found is None else (found.lat, found.lon)

"""A small ASGI app serving ingest's `POST /v1/internal/reads/search` contract (docs/contracts.md) from rows a
test gives it. Ingest builds the real endpoint in parallel; the end-to-end test against it comes at integration.
It checks the caller's service token like any of our services would."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from shared.auth import Principal, TokenVerifier, require_roles
from shared.errors import register_error_handlers
from shared.plates import confusion_key
from shared.settings import Settings


class AreaBody(BaseModel):
    lat: float
    lon: float
    radius_m: float


class SearchBody(BaseModel):
    plates: list[str]
    misread_tolerant: bool
    start: datetime
    end: datetime
    area: AreaBody | None
    agency: str | None
    limit: int = Field(le=500)
    cursor: str | None


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def reads_app(settings: Settings, rows: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()
    app.state.verifier = TokenVerifier(settings)
    app.state.calls = []
    register_error_handlers(app)

    @app.post("/v1/internal/reads/search")
    async def search(body: SearchBody, caller: Principal = Depends(require_roles("service"))) -> dict[str, Any]:
        app.state.calls.append((caller.subject, body))

        def plate_ok(plate: str) -> bool:
            if not body.plates:
                return True
            if body.misread_tolerant:
                return any(_regex(confusion_key(p)).fullmatch(confusion_key(plate)) for p in body.plates)
            return any(_regex(p).fullmatch(plate) for p in body.plates)

        found = [
            r
            for r in sorted(rows, key=lambda r: r["captured_at"])
            if plate_ok(r["plate"])
            and body.start <= datetime.fromisoformat(r["captured_at"]) <= body.end
            and (body.area is None or _metres(body.area.lat, body.area.lon, r["lat"], r["lon"]) <= body.area.radius_m)
        ]
        offset = int(body.cursor or 0)
        page = found[offset : offset + body.limit]
        more = offset + body.limit < len(found)
        return {"reads": page, "next_cursor": str(offset + body.limit) if more else None}

    return app

"""`POST /v1/reads` is answered beside FastAPI's router (shared/fastpath.py, issue 18). The same requests
get the same answers from it as from the route: one app has the route removed from its router (so only the fast
path can answer), the other has the fast path removed (so only the route can)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.ingest.main import create_app
from shared.fastpath import BesideTheRouter
from shared.settings import Settings
from tests.ingest.conftest import AGENCY, ingest_settings
from tests.support.apps import running, without_route


def _without_route(settings: Settings) -> Any:
    return without_route(create_app(ingest_settings(settings)), "POST", "/v1/reads")


def _without_fast_path(settings: Settings) -> Any:
    app = create_app(ingest_settings(settings))
    app.user_middleware = [m for m in app.user_middleware if m.cls is not BesideTheRouter]
    return app


async def _answers(
    client: httpx.AsyncClient, officer: str, supervisor: str, unit: str, at: str
) -> list[tuple[int, Any]]:
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    started = await client.post(
        "/v1/shifts", json={"badge": "7001", "unit": unit, "cameras": ["front"]}, headers=auth(officer)
    )
    assert started.status_code in (201, 409), started.text  # the second app finds the first one's shift open
    meta = {"client_read_id": "fast-1", "unit": unit, "camera": "front", "captured_at": at}
    meta |= {"lat": 45.03, "lon": -93.36}
    requests: list[dict[str, Any]] = [
        {"json": {**meta, "plate": "ABC123"}},  # no token
        {"json": {**meta, "plate": "ABC123"}, "headers": {"Authorization": "Basic eDp5"}},
        {"json": {**meta, "plate": "ABC123"}, "headers": auth("not-a-jwt")},
        {"json": {**meta, "plate": "ABC123"}, "headers": auth(supervisor)},  # not an officer
        {"content": b"plate=ABC123", "headers": {**auth(officer), "Content-Type": "text/plain"}},
        {"content": b"{not json", "headers": {**auth(officer), "Content-Type": "application/json"}},
        {"json": {**meta, "lat": 123.0, "plate": "ABC123"}, "headers": auth(officer)},
        {"json": {**meta, "unit": "car-nobody", "plate": "ABC123"}, "headers": auth(officer)},
        {"json": {**meta, "captured_at": "2020-01-01T00:00:00Z", "plate": "ABC123"}, "headers": auth(officer)},
        {
            "content": b"x" * 16,
            "headers": {**auth(officer), "Content-Type": "application/json", "Content-Length": "5000000"},
        },
        {"files": {"metadata": (None, json.dumps({**meta, "plate": "MN 4321"}), "application/json")}},
    ]
    out: list[tuple[int, Any]] = []
    for kwargs in requests:
        if "files" in kwargs:
            kwargs = {**kwargs, "headers": auth(officer)}
        resp = await client.post("/v1/reads", **kwargs)
        body = resp.json()
        out.append((resp.status_code, body if resp.status_code >= 400 else {"plate": body["plate"]}))
    # The route's own limit (photo, crop and the form), not only the app-wide one.
    assert "over the limit of 5" not in str(out[9][1]) and "268435456" not in str(out[9][1]), out[9]
    return out


async def test_the_fast_path_answers_reads_as_the_route_does(settings: Settings, make_token: Any) -> None:
    officer = make_token(subject="officer-7001", roles=["officer"], badge="7001", agency=AGENCY, trained_until=2**31)
    supervisor = make_token(subject="sup-1", roles=["supervisor"], agency=AGENCY, trained_until=2**31)
    unit, at = f"car-{uuid.uuid4().hex[:8]}", (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    async with running(_without_route(settings)) as fast:
        by_fast_path = await _answers(fast, officer, supervisor, unit, at)
    async with running(_without_fast_path(settings)) as routed:
        by_route = await _answers(routed, officer, supervisor, unit, at)
    assert by_fast_path == by_route
    statuses = [status for status, _ in by_route]
    assert statuses == [401, 401, 401, 403, 400, 422, 422, 409, 422, 413, 200], [a[:2] for a in by_route]

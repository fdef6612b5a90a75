"""A PostgreSQL outage is logged once, not as a traceback per request (issue 29): under uvicorn, with the database
gone, each request that needs it is answered a clean 503, uvicorn logs no "Exception in ASGI application", and the
service logs one `dependency_unavailable` warning for the whole run of failures."""

from __future__ import annotations

import json
import logging
import socket

import httpx
import pytest

from services.access.main import create_app
from shared.settings import Settings
from tests.support.fuzz import serving


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_an_outage_is_one_warning_and_no_traceback(
    settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    gone = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://nobody@127.0.0.1:{_dead_port()}/gone", "log_level": "INFO"}
    )
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with serving(create_app(gone)) as url:
        capfd.readouterr()  # the start's own lines
        for _ in range(8):
            resp = httpx.post(
                f"{url}/v1/token",
                data={"grant_type": "password", "username": "someone", "password": "a long enough passphrase"},
                timeout=30,
            )
            assert resp.status_code == 503, resp.text
            assert resp.json()["detail"] == "database unavailable, retry later"
        logged = capfd.readouterr()
    assert "Exception in ASGI application" not in caplog.text + logged.err + logged.out
    events = [json.loads(line) for line in (logged.err + logged.out).splitlines() if line.startswith("{")]
    warnings = [e for e in events if e.get("event") == "dependency_unavailable" and e.get("level") == "warning"]
    assert len(warnings) == 1, [e.get("event") for e in events]

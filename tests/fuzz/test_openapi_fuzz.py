"""Each service fuzzed over its own OpenAPI (schemathesis), with tokens of every role and none: no 5xx, no status
the document does not list, no body breaking its schema. Bounded in time here (`ALPR_FUZZ_SECONDS` per service,
default 8); `make fuzz` runs it far longer."""

from __future__ import annotations

import importlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.fuzz import fuzz, fuzz_ports, serving

SECONDS = float(os.environ.get("ALPR_FUZZ_SECONDS", "8"))
EXAMPLES = int(os.environ.get("ALPR_FUZZ_EXAMPLES", "25"))
# The first of four ports the fuzzed services use (`make fuzz` sets it; unset: free ports), never the live 8001-8004.
FIRST_PORT = int(os.environ["ALPR_FUZZ_PORT"]) if os.environ.get("ALPR_FUZZ_PORT") else None
ROLES = ("officer", "supervisor", "auditor", "admin", "agency", "service")


def _tokens(make_token: TokenFactory) -> dict[str, str]:
    out = {}
    for role in ROLES:
        # Agencies of the fuzz's own: what it creates and audits stays out of other tests' agencies.
        claims: dict[str, Any] = {"agency": "MN9990001" if role == "agency" else "MN9990000"}
        if role in ("officer", "supervisor"):
            claims["badge"] = f"F-{role}"
            claims["trained_until"] = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
        out[role] = make_token(subject=f"fuzz-{role}", roles=[role], **claims)
    return out


@pytest.mark.parametrize("service", ["access", "hotlist", "ingest", "recognition"])
def test_fuzz_finds_nothing(service: str, settings: Settings, make_token: TokenFactory) -> None:
    overrides: dict[str, Any] = {"recognition_workers": 1} if service == "recognition" else {}
    ports = fuzz_ports(FIRST_PORT)
    overrides.update({f"{name}_port": port for name, port in ports.items()})
    if service == "ingest":
        base = ingest_settings(settings, **overrides)
    else:
        base = settings.model_copy(update=overrides)
    # What the fuzzed service calls is on the fuzz's ports (ingest's peers: a dead URL), never a live system's.
    for name, port in ports.items():
        if not (service == "ingest" and name in ("recognition", "hotlist")):
            assert base.url_of(name) == f"http://127.0.0.1:{port}", name
    app = importlib.import_module(f"services.{service}.main").create_app(base)
    with serving(app, ports[service]) as url:
        report = fuzz(url, _tokens(make_token), seconds=SECONDS, examples=EXAMPLES)
    assert report.requests > 100
    found = [f"{k}: {' '.join(v.split())[:400]}" for k, v in sorted(report.failures.items())]
    assert found == [], f"{report.requests} requests ({report.edges} at the edges):\n" + "\n".join(found)

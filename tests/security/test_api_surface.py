"""What every service's API shows a caller: docs that load on an air-gapped network, and request bodies that refuse
a field they do not know (a 422 naming it) rather than drop it silently."""

from __future__ import annotations

import importlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

SERVICES = ["access", "hotlist", "ingest", "recognition"]
ROLES = ("officer", "supervisor", "auditor", "admin", "service")
UNKNOWN = "zz_not_a_field"


def _app(service: str, settings: Settings) -> Any:
    if service == "ingest":
        base = ingest_settings(settings)
    elif service == "recognition":
        base = settings.model_copy(update={"recognition_workers": 1})
    else:
        base = settings.model_copy(update={"hotlist_sync_scheduled": False})
    return importlib.import_module(f"services.{service}.main").create_app(base)


@pytest.mark.parametrize("service", SERVICES)
async def test_api_docs_name_no_external_host_and_their_files_are_served(service: str, settings: Settings) -> None:
    async with running(_app(service, settings)) as client:
        for page in ("/docs", "/redoc"):
            html = await client.get(page)
            assert html.status_code == 200 and "text/html" in html.headers["content-type"]
            hosts = re.findall(r"(?:https?:)?//([A-Za-z0-9.-]+)", html.text)
            assert hosts == [], f"{page} names {hosts}"
            assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
            assert assets, page
            for asset in assets:
                got = await client.get(asset)
                assert got.status_code == 200 and len(got.content) > 100, asset


def _tokens(make_token: TokenFactory) -> dict[str, str]:
    trained = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    out = {}
    for role in ROLES:
        claims: dict[str, Any] = {"agency": "MN9930000"}
        if role in ("officer", "supervisor"):
            claims.update(badge=f"B-{role}", trained_until=trained)
        out[role] = make_token(subject=f"strict-{role}", roles=[role], **claims)
    return out


# The camera agents post the vendor's own bodies (alprd, Rekor Scout), unchanged: fields the statute disallows are
# dropped and counted, the rest parsed leniently (docs/ingest.md). Theirs is not our request model.
VENDOR_BODIES = ("/v1/agents/openalpr",)


def _refs(schema: Any, comps: dict[str, Any], seen: set[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.split("/")[-1] not in seen:
            seen.add(ref.split("/")[-1])
            _refs(comps.get(ref.split("/")[-1], {}), comps, seen)
        for value in schema.values():
            _refs(value, comps, seen)
    elif isinstance(schema, list):
        for value in schema:
            _refs(value, comps, seen)


def _json_posts(doc: dict[str, Any]) -> list[str]:
    return [
        path
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in ("post", "put", "patch") and "application/json" in op.get("requestBody", {}).get("content", {})
    ]


# Recognition takes images only (multipart), no JSON body.
@pytest.mark.parametrize("service", ["access", "hotlist", "ingest"])
async def test_an_unknown_field_is_a_422_naming_it_on_every_post(
    service: str, settings: Settings, make_token: TokenFactory
) -> None:
    app = _app(service, settings)
    doc = app.openapi()
    comps = doc.get("components", {}).get("schemas", {})
    posts = [p for p in _json_posts(doc) if not p.startswith(VENDOR_BODIES)]
    assert posts, service
    for path in posts:
        # Every object a JSON body holds, nested ones included, says so in the document too.
        body = next(op for op in doc["paths"][path].values() if "requestBody" in op)["requestBody"]
        names: set[str] = set()
        _refs(body["content"]["application/json"]["schema"], comps, names)
        loose = sorted(
            n
            for n in names
            if comps.get(n, {}).get("type") == "object" and comps[n].get("additionalProperties") is not False
        )
        assert loose == [], (path, loose)
    tokens = _tokens(make_token)
    refused: dict[str, Any] = {}
    async with running(app) as client:
        for path in posts:
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            answers = []
            for role in ROLES:
                resp = await client.post(url, json={UNKNOWN: 1}, headers={"Authorization": f"Bearer {tokens[role]}"})
                answers.append(resp.status_code)
                if resp.status_code == 422:
                    detail = resp.json()["detail"]
                    named = [e for e in detail if isinstance(e, dict) and e.get("loc", [])[-1:] == [UNKNOWN]]
                    refused[path] = named and named[0]["type"] == "extra_forbidden"
                    break
            else:
                refused[path] = answers
    assert {p: r for p, r in refused.items() if r is not True} == {}

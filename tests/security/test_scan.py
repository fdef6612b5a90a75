"""The one door, checked against the apps' routes: every route whose answer carries stored reads, positions, photos
or hits is in `shared.scoping.READ_DOORS` (the table the README's access section prints), and every route in that
table takes the shared scope (`shared.scoping.Scoped`), which filters by the caller's agency and writes the audit
entry."""

from __future__ import annotations

import importlib
import typing
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.auth import current_principal
from shared.scoping import READ_DOORS, READ_FIELDS, scope
from shared.settings import Settings

SERVICES = ("access", "ingest", "hotlist", "recognition")


def _routes(settings: Settings) -> dict[tuple[str, str], APIRoute]:
    out: dict[tuple[str, str], APIRoute] = {}
    for service in SERVICES:
        app: FastAPI = importlib.import_module(f"services.{service}.main").create_app(settings)
        for route in _walk(app.routes):
            for method in route.methods:
                out[(method, route.path)] = route
    return out


def _walk(routes: list[Any]) -> list[APIRoute]:
    # Included routers come as wrappers in recent FastAPI: walk into them (the services include without prefix).
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _walk(route.original_router.routes)
    return found


def _fields(model: Any, seen: set[Any]) -> set[str]:
    """Every field name in a response model, nested models and lists of them included."""
    if model in seen:
        return set()
    seen.add(model)
    origin_args = typing.get_args(model)
    if origin_args:
        return set().union(*(_fields(a, seen) for a in origin_args))
    if isinstance(model, type) and issubclass(model, BaseModel):
        names = set(model.model_fields)
        for f in model.model_fields.values():
            names |= _fields(f.annotation, seen)
        return names
    return set()


def _takes_scope(dep: Dependant) -> bool:
    return dep.call is scope or any(_takes_scope(d) for d in dep.dependencies)


def test_every_route_returning_read_data_goes_through_the_shared_scope(settings: Settings) -> None:
    routes = _routes(settings)
    carrying = {
        key
        for key, route in routes.items()
        if route.response_model is not None and _fields(route.response_model, set()) & READ_FIELDS
    }
    # Posting a read answers the car its own read; whoami and the like carry none.
    # (adding a list entry answers `past_read_hits`, always empty since past-read matching went).
    own = {
        ("POST", "/v1/reads"),
        ("POST", "/v1/reads/batch"),
        ("POST", "/v1/match"),
        ("POST", "/v1/match/batch"),
        ("POST", "/v1/internal/hits"),
    }
    own |= {("POST", "/v1/lists/{name}/entries")}
    # A unit's MDC posting the car's position gets nothing back (204): no position leaves ingest by that door.
    position = routes[("POST", "/v1/units/{unit}/position")]
    assert position.status_code == 204 and position.response_model is None
    missing = sorted(carrying - set(READ_DOORS) - own)
    assert missing == [], f"routes returning read data outside the table of doors (shared/scoping.py): {missing}"
    absent = sorted(set(READ_DOORS) - set(routes))
    assert absent == [], f"READ_DOORS rows for routes that do not exist: {absent}"
    unscoped = sorted(key for key in READ_DOORS if not _takes_scope(routes[key].dependant))
    assert unscoped == [], f"doors that do not take the shared scope (shared.scoping.Scoped): {unscoped}"


@pytest.mark.parametrize("door", sorted(READ_DOORS))
def test_each_door_says_what_guards_it(door: tuple[str, str]) -> None:
    assert len(READ_DOORS[door]) > 20


def _gates(dep: Dependant) -> list[Any]:
    found = [dep.call] if dep.call is not None and hasattr(dep.call, "trained") else []
    for d in dep.dependencies:
        found += _gates(d)
    return found


def _authenticates(dep: Dependant) -> bool:
    return dep.call is current_principal or any(_authenticates(d) for d in dep.dependencies)


# Routes a caller reaches with a token that open no ALPR data: who the token says one is, and ending one's session.
NO_DATA = {("GET", "/v1/whoami"), ("POST", "/v1/logout")}


def test_every_data_route_depends_on_training(settings: Settings) -> None:
    """13.824 subd. 7(b): training before any use. Every route that takes a token goes through the one role gate
    (`shared.auth.require_roles`), which checks an officer's or supervisor's training; only the routes that open
    no data may skip it, and the only way to skip it is to say so (`trained=False`)."""
    routes = _routes(settings)
    authenticated = {key for key, route in routes.items() if _authenticates(route.dependant)}
    assert len(authenticated) > 60  # the scan sees the apps' routes, not an empty list
    ungated = sorted(
        key
        for key in authenticated - NO_DATA
        if not any(getattr(g, "trained", False) for g in _gates(routes[key].dependant))
    )
    assert ungated == [], f"routes that take a token without the training gate: {ungated}"
    # Every read door of the table is among them, and logout is the only route that opts out.
    assert set(READ_DOORS) <= authenticated - NO_DATA
    opted_out = sorted(key for key in authenticated if any(not g.trained for g in _gates(routes[key].dependant)))
    assert opted_out == [("POST", "/v1/logout")]

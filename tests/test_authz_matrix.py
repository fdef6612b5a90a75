"""The authorization matrix: every role (and no token) against every protected endpoint of every service.

Table-driven: a service's new endpoint gets a row in MATRIX (or, if it needs no token, a place in PUBLIC); the
completeness test fails until it has one. Expected: no token 401; a role not listed 403; a listed role gets past
authorization (any answer but 401/403: an empty body is a 422, an unknown id a 404).
"""

from __future__ import annotations

import asyncio
import importlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.support.apps import running

ALL = frozenset({"officer", "supervisor", "auditor", "admin", "agency", "service"})
# Only the service role passes these doors' role gate; its token must also carry the grant it serves, or the route
# answers 403 (shared/acting_for.py, tests/security/test_master_key.py).
SERVICE_WITH_GRANT = frozenset({"service"})

# service -> {(method, path): roles allowed}
MATRIX: dict[str, dict[tuple[str, str], frozenset[str]]] = {
    "access": {
        ("GET", "/v1/whoami"): ALL,
        ("POST", "/v1/logout"): ALL,
        ("GET", "/v1/users"): frozenset({"admin"}),
        ("POST", "/v1/users/{user_id}/unlock"): frozenset({"admin"}),
        ("POST", "/v1/users/{user_id}/disable"): frozenset({"admin"}),
        ("POST", "/v1/users/{user_id}/enable"): frozenset({"admin"}),
        ("POST", "/v1/users/{user_id}/password"): frozenset({"admin"}),
        ("POST", "/v1/clients/{client_id}/disable"): frozenset({"admin"}),
        ("POST", "/v1/clients/{client_id}/enable"): frozenset({"admin"}),
        ("POST", "/v1/clients/{client_id}/rotate-secret"): frozenset({"admin"}),
        ("POST", "/v1/requests"): frozenset({"officer", "supervisor", "agency"}),
        ("POST", "/v1/requests/{request_id}/versions"): frozenset({"officer", "supervisor", "agency"}),
        ("GET", "/v1/requests"): frozenset({"officer", "supervisor", "agency"}),
        ("GET", "/v1/requests/queue"): frozenset({"supervisor"}),
        ("GET", "/v1/requests/{request_id}"): frozenset({"officer", "supervisor", "agency", "auditor"}),
        ("POST", "/v1/requests/{request_id}/decision"): frozenset({"supervisor"}),
        ("GET", "/v1/grants"): frozenset({"officer", "supervisor", "agency"}),
        ("POST", "/v1/grants/{grant_id}/revoke"): frozenset({"supervisor"}),
        ("POST", "/v1/reads/search"): frozenset({"officer", "supervisor", "agency"}),
        ("POST", "/v1/disclosures"): frozenset({"officer", "supervisor"}),
        ("GET", "/v1/disclosures"): frozenset({"supervisor", "auditor"}),
        ("GET", "/v1/audit"): frozenset({"auditor"}),
        ("GET", "/v1/audit/verify"): frozenset({"auditor"}),
        ("GET", "/v1/reports/log-of-use"): frozenset({"supervisor", "auditor", "admin"}),
        ("GET", "/v1/reports/bca-notices"): frozenset({"supervisor", "auditor", "admin"}),
        ("POST", "/v1/reports/bca-notices"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/reports/audit"): frozenset({"auditor"}),
        # A signed link opens only with the token of the person it was issued to.
        ("GET", "/v1/objects/{key}"): frozenset({"officer", "supervisor", "agency", "auditor"}),
        ("GET", "/v1/reports/commissioner-summary"): frozenset({"auditor"}),
        ("GET", "/v1/reports/bca-notices/letter"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/audit/export"): frozenset({"auditor"}),
        ("POST", "/v1/evidence"): frozenset({"officer", "supervisor"}),
        ("POST", "/v1/quarantine/open"): frozenset({"officer", "supervisor"}),
        ("POST", "/v1/breaches"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/breaches"): frozenset({"supervisor", "auditor", "admin"}),
        ("POST", "/v1/breaches/{breach_id}/notifications"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/breaches/{breach_id}/law-enforcement-delay"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/breaches/{breach_id}/law-enforcement-delay/end"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/breaches/{breach_id}/investigation"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/security-assessments"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/security-assessments"): frozenset({"supervisor", "auditor", "admin"}),
    },
    "ingest": {
        ("GET", "/v1/whoami"): ALL,
        ("POST", "/v1/shifts"): frozenset({"officer"}),
        ("POST", "/v1/shifts/{shift_id}/end"): frozenset({"officer", "supervisor", "auditor", "admin"}),
        ("GET", "/v1/shifts/{shift_id}"): frozenset({"officer", "supervisor", "auditor", "admin"}),
        ("GET", "/v1/shifts"): frozenset({"supervisor", "auditor", "admin"}),
        ("POST", "/v1/reads"): frozenset({"officer"}),
        ("POST", "/v1/reads/batch"): frozenset({"officer"}),
        ("GET", "/v1/units/{unit}/events"): frozenset({"officer", "supervisor", "admin"}),
        ("GET", "/v1/units/{unit}/stream"): frozenset({"officer", "supervisor", "admin"}),
        ("POST", "/v1/units/{unit}/position"): frozenset({"officer"}),
        ("GET", "/v1/agencies/{agency}/events"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/agencies/{agency}/suspension"): frozenset({"admin"}),
        ("POST", "/v1/agencies/{agency}/suspension/lift"): frozenset({"admin"}),
        ("GET", "/v1/agencies/{agency}/suspensions"): frozenset({"admin", "supervisor", "auditor"}),
        ("POST", "/v1/internal/reads/search"): SERVICE_WITH_GRANT,
        ("POST", "/v1/internal/hits"): frozenset({"service"}),
        ("POST", "/v1/internal/reads/held"): frozenset({"service"}),
        ("POST", "/v1/internal/reads/evidence"): SERVICE_WITH_GRANT,
        ("POST", "/v1/agents"): frozenset({"admin"}),
        ("GET", "/v1/agents"): frozenset({"admin", "supervisor", "auditor"}),
        ("GET", "/v1/agents/quarantine"): frozenset({"admin"}),
        ("DELETE", "/v1/agents/quarantine/{post_id}"): frozenset({"admin"}),
        ("POST", "/v1/internal/agents/quarantine/post"): SERVICE_WITH_GRANT,
        ("GET", "/v1/agents/spool"): frozenset({"admin"}),
        ("GET", "/v1/agents/{agent_id}"): frozenset({"admin", "supervisor", "auditor"}),
        ("POST", "/v1/agents/{agent_id}/rotate"): frozenset({"admin"}),
        ("POST", "/v1/agents/{agent_id}/disable"): frozenset({"admin"}),
        ("POST", "/v1/agents/{agent_id}/enable"): frozenset({"admin"}),
        ("GET", "/v1/agents/{agent_id}/activity"): frozenset({"admin", "supervisor", "auditor"}),
        ("POST", "/v1/holds"): frozenset({"supervisor"}),
        ("POST", "/v1/holds/{hold_id}/release"): frozenset({"supervisor"}),
        ("GET", "/v1/holds"): frozenset({"supervisor", "auditor"}),
        ("POST", "/v1/holds/{hold_id}/subject-request"): frozenset({"supervisor"}),
        ("GET", "/v1/holds/reviews"): frozenset({"supervisor", "auditor"}),
        ("POST", "/v1/holds/{hold_id}/reviews"): frozenset({"supervisor"}),
        ("GET", "/v1/internal/retention"): frozenset({"service"}),
        ("GET", "/v1/internal/subject-requests/counts"): frozenset({"service"}),
        ("GET", "/v1/internal/usage"): frozenset({"service"}),
        ("GET", "/v1/internal/readers"): frozenset({"service"}),
        ("POST", "/v1/agents/{agent_id}/location"): frozenset({"admin"}),
        ("POST", "/v1/subject-requests/safe-at-home"): frozenset({"supervisor"}),
        ("POST", "/v1/subject-requests/safe-at-home/{request_id}/confirm"): frozenset({"supervisor"}),
        ("GET", "/v1/subject-requests/safe-at-home/pending"): frozenset({"supervisor"}),
    },
    "recognition": {
        ("GET", "/v1/whoami"): ALL,
        ("POST", "/v1/recognize"): frozenset({"service", "officer", "admin"}),
        ("POST", "/v1/recognize/batch"): frozenset({"service", "officer", "admin"}),
    },
    "hotlist": {
        ("GET", "/v1/whoami"): ALL,
        ("POST", "/v1/match"): frozenset({"service", "admin"}),
        ("POST", "/v1/match/batch"): frozenset({"service", "admin"}),
        ("GET", "/v1/hotlist/version"): frozenset({"officer", "supervisor", "service", "admin"}),
        ("GET", "/v1/hotlist/list"): frozenset({"officer", "supervisor", "service", "admin"}),
        ("GET", "/v1/hotlist/delta"): frozenset({"officer", "supervisor", "service", "admin"}),
        ("GET", "/v1/hotlist/agency-entries"): frozenset({"officer", "supervisor", "service", "admin"}),
        ("POST", "/v1/hotlist/sync"): frozenset({"admin"}),
        ("POST", "/v1/lists"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/lists"): frozenset({"supervisor", "admin"}),
        ("POST", "/v1/lists/{name}/entries"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/lists/{name}/entries"): frozenset({"supervisor", "admin"}),
        ("DELETE", "/v1/lists/{name}/entries/{entry_id}"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/hits/pending"): frozenset({"supervisor", "admin"}),
        ("GET", "/v1/hits/{hit_id}"): frozenset({"officer", "supervisor", "admin"}),
        ("POST", "/v1/hits/{hit_id}/verification"): frozenset({"officer", "supervisor"}),
        ("POST", "/v1/hits/{hit_id}/dispositions"): frozenset({"officer", "supervisor"}),
        ("POST", "/v1/hit-holds"): frozenset({"supervisor"}),
        ("POST", "/v1/hit-holds/{hold_id}/release"): frozenset({"supervisor"}),
        ("GET", "/v1/hit-holds"): frozenset({"supervisor", "auditor"}),
        ("GET", "/v1/internal/report"): frozenset({"service"}),
        ("POST", "/v1/internal/hits/of-read"): SERVICE_WITH_GRANT,
        ("POST", "/v1/internal/subject-requests/safe-at-home"): frozenset({"service"}),
        ("POST", "/v1/internal/plates/listed"): frozenset({"service"}),
    },
}

# Endpoints that take no bearer token, and why.
PUBLIC: dict[str, set[tuple[str, str]]] = {
    "access": {
        ("POST", "/v1/token"),  # it is how a token is obtained
        ("GET", "/.well-known/jwks.json"),  # public keys
        ("GET", "/v1/public/log-of-use"),  # the statute makes the log of use public; it carries no personal data
    },
    "ingest": {
        # Camera agents (alprd, Rekor) send no authentication header: the agent's secret token in the URL path,
        # `?token=` or `custom_data` is the authentication (tests/ingest/test_agents.py: wrong token 401).
        ("POST", "/v1/agents/openalpr/{token}"),
        ("POST", "/v1/agents/openalpr"),
    },
}
# /metrics: counts only, for the internal network; a bearer token when ALPR_METRICS_TOKEN is set (shared/metrics.py).
HEALTH = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}

# The agency dimension: every endpoint that takes an id is tried by agency B with agency A's id, in the tests/security
# test named here (404, or 403 with a reason), or says why the id is not another agency's record.
TWO = "tests/security/test_two_agencies.py::test_two_agencies_see_only_their_own"
DOORS = "tests/security/test_access_doors.py::test_another_agency_cannot_reach_a_request_grant_or_disclosure"
AGENTS = "tests/security/test_two_agencies.py::test_agents_are_their_agencys"
# API clients (outside agencies, our services) are the back office's, made with the CLI: not one agency's records.
ACCOUNT = "an API client, not agency data: the back office's administrators manage every client"
PEOPLE = "tests/security/test_access_doors.py::test_an_agencys_people_are_its_own_administrators_to_manage"
BREACH = "tests/security/test_access_doors.py::test_a_breach_record_is_its_agencys"
BREACH_DUTIES = "tests/access/test_breach_duties.py::test_each_duty_has_its_due_date_and_is_warned_when_overdue"
QUARANTINE = (
    "tests/security/test_quarantine_grant.py::test_a_quarantined_post_opens_in_full_only_under_a_covering_grant"
)
SUSPEND = "tests/security/test_suspension.py::test_a_suspended_agency_collects_nothing_until_lifted"
CROSS_AGENCY: dict[tuple[str, str], str] = {
    ("POST", "/v1/users/{user_id}/unlock"): PEOPLE,
    ("POST", "/v1/users/{user_id}/disable"): PEOPLE,
    ("POST", "/v1/users/{user_id}/enable"): PEOPLE,
    ("POST", "/v1/users/{user_id}/password"): PEOPLE,
    ("POST", "/v1/clients/{client_id}/disable"): ACCOUNT,
    ("POST", "/v1/clients/{client_id}/enable"): ACCOUNT,
    ("POST", "/v1/clients/{client_id}/rotate-secret"): ACCOUNT,
    ("POST", "/v1/requests/{request_id}/versions"): "only the requester amends (tests/access/test_requests.py)",
    ("GET", "/v1/requests/{request_id}"): DOORS,
    ("POST", "/v1/requests/{request_id}/decision"): "only a supervisor of the requester's agency decides "
    "(tests/access/test_requests.py: another agency's supervisor refused)",
    ("POST", "/v1/grants/{grant_id}/revoke"): DOORS,
    ("GET", "/v1/objects/{key}"): "bound to its viewer (tests/access/test_search.py: a forwarded link refused)",
    ("POST", "/v1/shifts/{shift_id}/end"): TWO,
    ("GET", "/v1/shifts/{shift_id}"): TWO,
    ("GET", "/v1/units/{unit}/events"): TWO,
    ("GET", "/v1/units/{unit}/stream"): TWO,
    # Only the unit's officer on shift in their own agency posts its position, and only that agency's agents use it.
    ("POST", "/v1/units/{unit}/position"): "tests/ingest/test_unit_positions.py::"
    "test_a_position_posted_alone_locates_the_units_agent_reads_of_its_agency_only",
    ("GET", "/v1/agencies/{agency}/events"): TWO,
    ("POST", "/v1/agencies/{agency}/suspension"): SUSPEND,
    ("POST", "/v1/agencies/{agency}/suspension/lift"): SUSPEND,
    ("GET", "/v1/agencies/{agency}/suspensions"): SUSPEND,
    ("GET", "/v1/agents/{agent_id}"): AGENTS,
    ("POST", "/v1/agents/{agent_id}/rotate"): AGENTS,
    ("POST", "/v1/agents/{agent_id}/disable"): AGENTS,
    ("POST", "/v1/agents/{agent_id}/enable"): AGENTS,
    ("GET", "/v1/agents/{agent_id}/activity"): AGENTS,
    ("POST", "/v1/agents/{agent_id}/location"): AGENTS,
    ("DELETE", "/v1/agents/quarantine/{post_id}"): QUARANTINE,
    ("POST", "/v1/holds/{hold_id}/release"): TWO,
    ("POST", "/v1/holds/{hold_id}/reviews"): TWO,
    ("POST", "/v1/holds/{hold_id}/subject-request"): TWO,
    ("POST", "/v1/breaches/{breach_id}/notifications"): BREACH,
    ("POST", "/v1/breaches/{breach_id}/law-enforcement-delay"): BREACH_DUTIES,
    ("POST", "/v1/breaches/{breach_id}/law-enforcement-delay/end"): BREACH_DUTIES,
    ("POST", "/v1/breaches/{breach_id}/investigation"): BREACH_DUTIES,
    ("POST", "/v1/subject-requests/safe-at-home/{request_id}/confirm"): TWO,
    ("GET", "/v1/lists/{name}/entries"): TWO,
    ("POST", "/v1/lists/{name}/entries"): TWO,
    ("DELETE", "/v1/lists/{name}/entries/{entry_id}"): TWO,
    ("GET", "/v1/hits/{hit_id}"): TWO,
    ("POST", "/v1/hits/{hit_id}/verification"): TWO,
    ("POST", "/v1/hits/{hit_id}/dispositions"): TWO,
    ("POST", "/v1/hit-holds/{hold_id}/release"): TWO,
}
STREAM_OPEN_S = 3.0  # a refusal answers at once; a stream that is still open after this was let in


def _app(service: str, settings: Settings) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.main").create_app(settings)
    return app


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    # The OpenAPI document lists every API route however routers were included.
    return {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}


def _token(make_token: TokenFactory, role: str) -> str:
    claims: dict[str, object] = {"agency": "MN0270900" if role == "agency" else "MN0271200"}
    if role in ("officer", "supervisor"):
        claims["badge"] = f"M-{role}"
        claims["trained_until"] = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    # The service role as access's own token: the role gate is what this matrix checks; which service may call
    # which internal route is tests/security/test_service_keys.py's.
    subject = "service:access" if role == "service" else f"matrix-{role}"
    return make_token(subject=subject, roles=[role], **claims)


@pytest.mark.parametrize("service", sorted(MATRIX))
def test_every_endpoint_is_in_the_matrix(service: str, settings: Settings) -> None:
    routes = _routes(_app(service, settings))
    listed = set(MATRIX[service]) | PUBLIC.get(service, set()) | HEALTH
    assert routes - listed == set(), f"{service}: endpoints missing from the authorization matrix"
    assert set(MATRIX[service]) - routes == set(), f"{service}: matrix rows for endpoints that do not exist"


async def _call(client: httpx.AsyncClient, method: str, url: str, token: str) -> tuple[int, str]:
    """Status and body; a stream that stays open (Server-Sent Events) got past authorization: 200."""
    try:
        resp = await asyncio.wait_for(
            client.request(method, url, headers={"Authorization": f"Bearer {token}"}), STREAM_OPEN_S
        )
    except TimeoutError:
        return 200, "stream open"
    return resp.status_code, resp.text


@pytest.mark.parametrize("service", sorted(MATRIX))
async def test_authorization_matrix(service: str, settings: Settings, make_token: TokenFactory) -> None:
    wrong: list[str] = []
    async with running(_app(service, settings)) as client:
        for (method, path), allowed in sorted(MATRIX[service].items()):
            # Any path parameter gets an id nobody has: authorization is decided before the lookup.
            url = re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), path.replace("{agency}", "MN0271200"))
            resp = await client.request(method, url)
            if resp.status_code != 401:
                wrong.append(f"{method} {path} without a token: {resp.status_code}, expected 401")
            for role in sorted(ALL):
                status, text = await _call(client, method, url, _token(make_token, role))
                denied = status in (401, 403)
                if (role in allowed) == denied:
                    expected = "allowed" if role in allowed else "403"
                    wrong.append(f"{method} {path} as {role}: {status} {text[:80]}, expected {expected}")
                elif denied and status != 403:
                    wrong.append(f"{method} {path} as {role}: {status}, expected 403")
    assert wrong == []


def test_every_endpoint_that_takes_an_id_is_tried_with_another_agencys_id() -> None:
    with_id = {key for rows in MATRIX.values() for key in rows if "{" in key[1]}
    assert with_id - set(CROSS_AGENCY) == set(), "endpoints with an id not tried across agencies (tests/security)"
    assert set(CROSS_AGENCY) - with_id == set(), "CROSS_AGENCY rows for endpoints not in the matrix"

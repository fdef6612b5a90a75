"""Location history (Minn. Stat. 13.824 subd. 2(d)), defined once (services/access/scope.py): a plate search that
spans more than one day, or any plate search with an area, needs a warrant or a documented exigency; an area-only
search keeps the area limit instead. Each case through the request form, and through a search under a grant, and
the table in docs/access.md says the same."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.access.scope import is_location_history
from tests.access.conftest import Access, bearer
from tests.access.test_search import granted, query, world  # noqa: F401 - the fixture

NOW = datetime.now(UTC).replace(microsecond=0)
SMALL = {"lat": 45.0322, "lon": -93.3602, "radius_m": 200}
WIDE = {"lat": 45.0, "lon": -93.3, "radius_m": 100_000}
WARRANT = {"warrant_number": "27-CR-26-4411"}
EXIGENCY = {
    "exigency_attestation": "Child abducted 14:02, Amber alert; approved by Sgt. Dahl at 14:10",
    "exigency": {
        "what": "a child abducted",
        "when": (NOW - timedelta(hours=2)).isoformat(),
        "approved_by": "Sgt. Dahl",
    },
}


def form(plates: list[str], hours: float, area: dict[str, Any] | None, **extra: Any) -> dict[str, str]:
    return {
        "request": json.dumps(
            {
                "case_number": "CR-2026-0411",
                "reason": "Abduction, Bass Lake Road",
                "suspicion_basis": "A witness saw the plate",
                "plates": plates,
                "start": (NOW - timedelta(hours=hours + 1)).isoformat(),
                "end": (NOW - timedelta(hours=1)).isoformat(),
                "area": area,
                **extra,
            }  # fmt: skip
        )
    }


@pytest.mark.parametrize(
    ("plates", "hours", "area", "extra", "status"),
    [
        (["ABC123"], 12, None, {}, 201),  # one plate, within a day: a stop's look-back, not a history
        (["ABC123"], 24, None, {}, 201),  # exactly one day
        (["ABC123"], 25, None, {}, 422),  # more than a day: where the vehicle went
        (["ABC123"], 25, None, WARRANT, 201),
        (["ABC123"], 48, None, EXIGENCY, 201),
        (["ABC123"], 2, SMALL, {}, 422),  # a plate and a place, however small
        (["ABC123"], 2, SMALL, EXIGENCY, 201),
        (["ABC123"], 48, WIDE, WARRANT, 201),
        ([], 24 * 30, SMALL, {}, 201),  # area only: who passed a place, within the area limit
        ([], 2, WIDE, {}, 422),  # area only, past the area limit: the warrant rule of the form
        ([], 2, WIDE, WARRANT, 201),
    ],
)
async def test_the_request_form_applies_the_rule(
    access: Access, plates: list[str], hours: float, area: Any, extra: dict[str, Any], status: int
) -> None:
    token = await access.token(await access.person("officer"))
    resp = await access.client.post("/v1/requests", data=form(plates, hours, area, **extra), headers=bearer(token))
    assert resp.status_code == status, resp.text
    if status == 422:
        assert "warrant number or an exigency attestation" in resp.text


async def test_a_search_under_a_grant_without_warrant_applies_the_rule(world: Any) -> None:  # noqa: F811
    access, rows, archive = world
    officer, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer), await access.token(sup)
    day = {"start": (NOW - timedelta(days=3)).isoformat(), "end": (NOW - timedelta(days=2)).isoformat()}
    grant = await granted(access, officer_token, sup_token, area=None, warrant_number=None, **day)
    assert grant["warrant_number"] is None
    ok = await access.client.post(
        "/v1/reads/search", json=query(grant, area=None, **day), headers=bearer(officer_token)
    )
    assert ok.status_code == 200, ok.text
    placed = await access.client.post("/v1/reads/search", json=query(grant, **day), headers=bearer(officer_token))
    assert placed.status_code == 403 and "is a location history" in placed.json()["detail"], placed.text


def _table() -> list[list[str]]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "access.md").read_text()
    section = text.split("**Location history**", 1)[1].split("\n\n", 2)[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()[2:]]


def test_the_table_in_docs_is_the_rule_in_code() -> None:
    rows = _table()
    assert len(rows) >= 5
    for plates, span, area, verdict in rows:
        hours = float(re.sub(r"[^0-9.]", "", span)) * (24 if "day" in span else 1)
        start = NOW - timedelta(hours=hours)
        expected = verdict.startswith("location history")
        got = is_location_history(["ABC123"] if plates == "yes" else [], start, NOW, area == "yes")
        assert got == expected, (plates, span, area, verdict)

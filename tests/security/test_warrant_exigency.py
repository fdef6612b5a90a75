"""Warrants and exigencies (issue 26): a warrant number is a court file number in the configured format, an
exigency states its facts (what, when, who approved), and the biennial audit lists each search made under one,
in the searching agency's report only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.access.main import create_app as access_app
from services.hotlist.main import create_app as hotlist_app
from services.ingest.main import create_app as ingest_app
from shared.settings import Settings
from tests.access.conftest import CHEAP_ARGON2, Access, bearer
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

A, B = "MN0271200", "MN0279999"
NOW = datetime.now(UTC)
FACTS = {
    "what": "a child taken from a school bus stop in a vehicle seen by three witnesses",
    "when": (NOW - timedelta(hours=1)).isoformat(),
    "approved_by": "Lt. Dana Berg, badge 2201",
}


def _request(**overrides: Any) -> dict[str, str]:
    body = {
        "case_number": "CR-2026-0777", "reason": "Abduction in progress",
        "suspicion_basis": "Witnesses saw the plate starting EXG1", "plates": ["EXG1*"], "area": None,
        "start": (NOW - timedelta(days=2)).isoformat(), "end": (NOW - timedelta(hours=1)).isoformat(), **overrides,
    }  # fmt: skip
    return {"request": json.dumps(body)}


async def test_warrant_format_exigency_facts_and_each_exigency_search_in_the_audit(
    settings: Settings, make_token: TokenFactory
) -> None:
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with running(ingest), running(hotlist):
        app = access_app(
            settings.model_copy(update=CHEAP_ARGON2),
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(app) as client:
            access = Access(app, client)
            officer = await access.token(await access.person("officer", agency=A))
            sup = await access.token(await access.person("supervisor", agency=A))

            for warrant in ("WARRANT-00", "27-CR-26", "x 27-CR-26-9876"):
                resp = await client.post("/v1/requests", data=_request(warrant_number=warrant), headers=bearer(officer))
                assert resp.status_code == 422 and "court file number" in resp.json()["detail"], (warrant, resp.text)
            court = await client.post(
                "/v1/requests", data=_request(warrant_number="27-CR-26-9876"), headers=bearer(officer)
            )
            assert court.status_code == 201, court.text

            bare = await client.post("/v1/requests", data=_request(exigency_attestation="x"), headers=bearer(officer))
            assert bare.status_code == 422 and "needs its facts" in bare.json()["detail"], bare.text
            future = {**FACTS, "when": (NOW + timedelta(days=1)).isoformat()}
            resp = await client.post(
                "/v1/requests", data=_request(exigency_attestation="x", exigency=future), headers=bearer(officer)
            )
            assert resp.status_code == 422 and "future" in resp.json()["detail"], resp.text
            filed = await client.post(
                "/v1/requests",
                data=_request(exigency_attestation="Imminent danger to a child", exigency=FACTS),
                headers=bearer(officer),
            )
            assert filed.status_code == 201, filed.text
            decided = await client.post(
                f"/v1/requests/{filed.json()['id']}/decision",
                json={"version": 1, "decision": "approve", "reason": "exigent: abduction in progress"},
                headers=bearer(sup),
            )
            assert decided.status_code == 200, decided.text
            grant = decided.json()["grant"]
            assert "approved by: Lt. Dana Berg" in grant["exigency_attestation"]
            query = {
                "grant_id": grant["id"], "plates": ["EXG1*"], "misread_tolerant": True,
                "start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW - timedelta(hours=2)).isoformat(),
            }  # fmt: skip
            for _ in range(2):
                found = await client.post("/v1/reads/search", json=query, headers=bearer(officer))
                assert found.status_code == 200, found.text

            period = {"start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW + timedelta(days=1)).isoformat()}
            own = bearer(make_token(subject="aud-a", roles=["auditor"], agency=A))
            report = await client.get("/v1/reports/audit", params=period, headers=own)
            assert report.status_code == 200, report.text
            listed = [s for s in report.json()["exigency_searches"] if s["grant_id"] == grant["id"]]
            assert len(listed) == 2 and all("Lt. Dana Berg" in s["exigency"] for s in listed), listed
            other = bearer(make_token(subject="aud-b", roles=["auditor"], agency=B))
            theirs = await client.get("/v1/reports/audit", params=period, headers=other)
            assert theirs.status_code == 200 and grant["id"] not in theirs.text

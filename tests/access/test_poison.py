"""Control characters and out-of-range numbers at access: a clear 422, never a 500; and a search refused for a NUL
in its cursor is still audited."""

from __future__ import annotations

import json
from typing import Any

from tests.access.conftest import AGENCY_ORI, bearer
from tests.access.test_search import granted, query, world  # noqa: F401 - the fixture
from tests.conftest import TokenFactory


async def test_control_characters_are_422_and_the_refused_search_is_audited(
    world: Any,  # noqa: F811
    make_token: TokenFactory,
) -> None:
    access, rows, archive = world
    officer, sup = await access.person("officer"), await access.person("supervisor")
    officer_token, sup_token = await access.token(officer), await access.token(sup)
    for field in ("case_number", "reason"):
        resp = await access.client.post(
            "/v1/requests",
            data={"request": json.dumps({field: "CR-2026\x00-1"})},
            headers=bearer(officer_token),
        )
        assert resp.status_code == 422 and "control characters" in resp.text, resp.text
    grant = await granted(access, officer_token, sup_token)

    other_token = await access.token(await access.person("officer"))  # the grant is not theirs: a denied search
    resp = await access.client.post(
        "/v1/reads/search", json=query(grant, cursor="abc\x00def"), headers=bearer(other_token)
    )
    assert resp.status_code == 422 and "cursor" in resp.json()["detail"], resp.text
    assert archive.state.calls == []
    auditor = make_token(subject="aud-p", roles=["auditor"], agency=AGENCY_ORI)
    denied = await access.audit(auditor, action="reads.search", outcome="denied")
    mine = [e for e in denied if e["grant_id"] == grant["id"]]
    assert len(mine) == 1 and "control characters" in mine[0]["details"]["reason"]
    assert mine[0]["details"]["query"]["cursor"] == "abcdef"  # kept, without the NUL PostgreSQL cannot store

    audit = await access.client.get("/v1/audit", params={"after_seq": 2**63}, headers=bearer(auditor))
    assert audit.status_code == 422, audit.text

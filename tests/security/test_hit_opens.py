"""A hit opens (its details: the read's plate, place and time) for the unit's officer and the agency's supervisors
only (13.824 subd. 7(a)); anyone else goes through a grant (POST /v1/reads/search). Ingest carries the shift's
officer on the match request, so hotlist decides without a call back per view. Two agencies: B's supervisor is told
the hit does not exist."""

from __future__ import annotations

import uuid

from tests.hotlist.bca import extract, row
from tests.integration.conftest import System
from tests.security.test_two_agencies import officer, person

_TAG = uuid.uuid4().hex[:5].upper()
A, B = f"MNHA{_TAG}", f"MNHB{_TAG}"


async def test_a_hit_opens_for_its_units_officer_and_the_agencys_supervisors_only(
    system: System,
    bca_server,  # type: ignore[no-untyped-def]
) -> None:
    plate = f"H{_TAG}"
    bca_server.publish(extract([row(f"V{uuid.uuid4().int % 10**9:09d}", plate)]))
    await system.sync()
    car, other_car = officer(system, A, "CAR-O1"), officer(system, A, "CAR-O2")
    assert (await car.start()).status_code == 201 and (await other_car.start()).status_code == 201
    answer = await car.post_read(car.meta(plate=plate, state="MN"))
    assert answer.status_code == 200, answer.text
    (hit,) = answer.json()["hits"]
    url = f"/v1/hits/{hit['hit_id']}"

    opened = await system.hotlist.get(url, headers=car.headers)
    assert opened.status_code == 200 and opened.json()["unit"] == "CAR-O1", opened.text
    assert (await system.hotlist.get(url, headers=person(system, "supervisor", A))).status_code == 200
    refused = await system.hotlist.get(url, headers=other_car.headers)  # the agency's other officer
    assert refused.status_code == 403 and "grant" in refused.json()["detail"], refused.text
    assert (await system.hotlist.get(url, headers=person(system, "admin", A))).status_code == 403
    assert (await system.hotlist.get(url, headers=person(system, "auditor", A))).status_code == 403
    assert (await system.hotlist.get(url, headers=person(system, "supervisor", B))).status_code == 404
    assert (await system.hotlist.get(url, headers=person(system, "officer", B))).status_code == 404

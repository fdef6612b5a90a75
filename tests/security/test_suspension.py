"""Suspending an agency's collection on the commissioner's order (Minn. Stat. 13.824 subd. 6(b)): with two agencies,
A's admin suspends A: A's open shift ends, A's cars and camera agents are refused with a 403 saying why, no shift
starts, `/readyz` warns, and each step is audited; B collects on; B's admin cannot touch A's switch. Lifting it lets
A collect again."""

from __future__ import annotations

import uuid

from tests.ingest.agents_support import now_ms, post, register, results_body
from tests.integration.conftest import System
from tests.security.test_two_agencies import audit_rows, officer, person

# Agencies of this test only: a suspension must not stop other tests' cars in the shared database.
_TAG = uuid.uuid4().hex[:5].upper()
A, B = f"MNSA{_TAG}", f"MNSB{_TAG}"


async def test_a_suspended_agency_collects_nothing_until_lifted(system: System) -> None:
    ing = system.ingest
    car_a, car_b = officer(system, A, "CAR-S1"), officer(system, B, "CAR-S1")
    assert (await car_a.start()).status_code == 201 and (await car_b.start()).status_code == 201
    admin_a, admin_b = person(system, "admin", A), person(system, "admin", B)
    agent = await register(ing, admin_a["Authorization"].removeprefix("Bearer "), name=f"pole-{uuid.uuid4().hex[:6]}")

    order = {"order_reference": "ADMIN-ORDER-2026-7", "reason": "commissioner's order after the audit"}
    refused = await ing.post(f"/v1/agencies/{A}/suspension", json=order, headers=admin_b)
    assert refused.status_code == 404  # no one switches another agency's collection
    officer_try = await ing.post(f"/v1/agencies/{A}/suspension", json=order, headers=person(system, "officer", A))
    assert officer_try.status_code == 403
    done = await ing.post(f"/v1/agencies/{A}/suspension", json=order, headers=admin_a)
    assert done.status_code == 201, done.text
    assert done.json()["shifts_ended"] == 1
    again = await ing.post(f"/v1/agencies/{A}/suspension", json=order, headers=admin_a)
    assert again.status_code == 409

    read_a = await car_a.post_read(car_a.meta(plate="SUS001"))
    assert read_a.status_code == 403 and "suspended" in read_a.json()["detail"], read_a.text
    assert "ADMIN-ORDER-2026-7" in read_a.json()["detail"]
    restart = await officer(system, A, "CAR-S2").start()
    assert restart.status_code == 403 and "suspended" in restart.json()["detail"]
    posted = await post(ing, agent["token"], results_body("SUS002", now_ms()))
    assert posted.status_code == 403 and "suspended" in posted.json()["detail"], posted.text
    read_b = await car_b.post_read(car_b.meta(plate="SUS003"))
    assert read_b.status_code == 200, read_b.text  # B collects on
    ready = (await ing.get("/readyz")).json()
    assert A in ready["warnings"]["collection_suspended"] and B not in ready["warnings"]["collection_suspended"]
    listed = await ing.get(f"/v1/agencies/{A}/suspensions", headers=person(system, "auditor", A))
    assert listed.status_code == 200 and listed.json()[0]["order_reference"] == "ADMIN-ORDER-2026-7"
    assert (await ing.get(f"/v1/agencies/{A}/suspensions", headers=person(system, "auditor", B))).status_code == 404

    by_b = await ing.post(f"/v1/agencies/{A}/suspension/lift", json={"reason": "order lifted"}, headers=admin_b)
    assert by_b.status_code == 404
    lifted = await ing.post(f"/v1/agencies/{A}/suspension/lift", json={"reason": "order lifted"}, headers=admin_a)
    assert lifted.status_code == 200 and lifted.json()["lifted_at"], lifted.text
    car_a2 = officer(system, A, "CAR-S3")
    assert (await car_a2.start()).status_code == 201
    assert (await car_a2.post_read(car_a2.meta(plate="SUS004"))).status_code == 200
    assert "collection_suspended" not in (await ing.get("/readyz")).json().get("warnings", {})
    assert [r["agency"] for r in await audit_rows(system, "agency.suspend") if r["agency"] in (A, B)] == [A]
    # The log of use names the suspension (access takes it from ingest's usage figures).
    day = {"start": done.json()["suspended_at"][:10] + "T00:00:00Z", "agency": A}
    day["end"] = lifted.json()["lifted_at"][:10] + "T23:59:59Z"
    usage = await ing.get("/v1/internal/usage", params=day, headers=system.auth("service", subject="service:access"))
    assert usage.status_code == 200, usage.text
    assert [s["order_reference"] for s in usage.json()["suspensions"]] == ["ADMIN-ORDER-2026-7"]
    other = await ing.get(
        "/v1/internal/usage", params={**day, "agency": B}, headers=system.auth("service", subject="service:access")
    )
    assert other.json()["suspensions"] == []
    assert [r["agency"] for r in await audit_rows(system, "agency.suspension_lift") if r["agency"] in (A, B)] == [A]

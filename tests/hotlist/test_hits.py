"""Hits: the three checks (the service answers "still current?" against the newest version), dispositions final
once entered (corrections are new entries), the refusals, and the supervisors' list of hits left without one."""

from __future__ import annotations

from services.hotlist.main import create_app
from shared.settings import Settings
from tests.hotlist.bca import FakeBca, extract, row
from tests.support.apps import running

READ = {"captured_at": "2026-11-25T10:00:00Z", "agency": "MN0271200", "unit": "car-3"}


async def test_verification_and_disposition_workflow(hl_settings: Settings, bca: FakeBca, tokens) -> None:  # type: ignore[no-untyped-def]
    officer = tokens("officer", agency="MN0271200")
    admin = tokens("admin")
    bca.publish(extract([row("V300000001", "HT0001"), row("W300000002", "HT0002")]))
    async with running(create_app(hl_settings)) as client:
        v1 = (await client.post("/v1/hotlist/sync", headers=admin)).json()["version"]
        match = await client.post(
            "/v1/match", headers=tokens("service"), json={"read_id": "r-ht", "plate": "HT0001", "state": "MN", **READ}
        )
        hit_id = match.json()["hits"][0]["hit_id"]
        other = await client.post(
            "/v1/match", headers=tokens("service"), json={"read_id": "r-ht2", "plate": "HT0002", **READ}
        )
        other_id = other.json()["hits"][0]["hit_id"]

        # Refusals before any check: a disposition needs the verification first; officers only.
        early = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": True, "action": "arrest"}
        )
        assert early.status_code == 409 and "verification" in early.json()["detail"]
        assert (
            await client.post(
                f"/v1/hits/{hit_id}/verification",
                headers=tokens("service"),
                json={"read_accurate": True, "state_matches": True},
            )
        ).status_code == 403

        checked = await client.post(
            f"/v1/hits/{hit_id}/verification", headers=officer, json={"read_accurate": True, "state_matches": True}
        )
        assert checked.status_code == 201, checked.text
        assert checked.json()["still_current"] is True and checked.json()["checked_version"] == v1
        assert checked.json()["confirmed"] is True

        # The BCA clears the stolen vehicle: "still current?" now says no, naming the newest version.
        bca.publish(extract([row("W300000002", "HT0002")]))
        v2 = (await client.post("/v1/hotlist/sync", headers=admin)).json()["version"]
        recheck = (
            await client.post(
                f"/v1/hits/{hit_id}/verification", headers=officer, json={"read_accurate": True, "state_matches": True}
            )
        ).json()
        assert (recheck["still_current"], recheck["checked_version"], recheck["confirmed"]) == (False, v2, False)

        bad_action = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": True, "action": "towed"}
        )
        assert bad_action.status_code == 422
        contradiction = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": True, "action": "misread"}
        )
        assert contradiction.status_code == 422

        first = await client.post(
            f"/v1/hits/{hit_id}/dispositions",
            headers=officer,
            json={"valid": False, "action": "no_action", "notes": "entry cleared before the stop"},
        )
        assert first.status_code == 201, first.text
        again = await client.post(
            f"/v1/hits/{hit_id}/dispositions", headers=officer, json={"valid": True, "action": "arrest"}
        )
        assert again.status_code == 409 and "final" in again.json()["detail"]
        no_notes = await client.post(
            f"/v1/hits/{hit_id}/dispositions",
            headers=officer,
            json={"valid": False, "action": "misread", "corrects": first.json()["id"]},
        )
        assert no_notes.status_code == 422
        # A misread needs a verification saying the read was not accurate (the last one said it was).
        reviewed = await client.post(
            f"/v1/hits/{hit_id}/verification", headers=officer, json={"read_accurate": False, "state_matches": True}
        )
        assert reviewed.status_code == 201, reviewed.text
        fix = await client.post(
            f"/v1/hits/{hit_id}/dispositions",
            headers=officer,
            json={
                "valid": False,
                "action": "misread",
                "notes": "plate was HT0O01 on review",
                "corrects": first.json()["id"],
            },
        )
        assert fix.status_code == 201 and fix.json()["corrects"] == first.json()["id"]
        twice = await client.post(
            f"/v1/hits/{hit_id}/dispositions",
            headers=officer,
            json={"valid": False, "action": "other", "notes": "x", "corrects": first.json()["id"]},
        )
        assert twice.status_code == 409

        # Not the unit's officer (the match named none): the agency's supervisor opens it.
        assert (await client.get(f"/v1/hits/{hit_id}", headers=officer)).status_code == 403
        supervisor = tokens("supervisor", agency="MN0271200")
        detail = (await client.get(f"/v1/hits/{hit_id}", headers=supervisor)).json()
        assert [v["checked_version"] for v in detail["verifications"]] == [v1, v2, v2]
        assert [(d["action"], d["corrects"]) for d in detail["dispositions"]] == [
            ("no_action", None),
            ("misread", first.json()["id"]),
        ]
        assert detail["list_version"] == v1  # the hit keeps the version it came from

        # Supervisors: hits without a disposition after the configured time (0 s here: all of them).
        assert (await client.get("/v1/hits/pending", headers=officer)).status_code == 403
        pending = await client.get(
            "/v1/hits/pending", params={"older_than_s": 0, "limit": 500}, headers=tokens("supervisor")
        )
        ids = {h["hit_id"] for h in pending.json()["hits"]}
        assert other_id in ids and hit_id not in ids
        later = await client.get("/v1/hits/pending", headers=tokens("supervisor"))  # default: an hour
        assert other_id not in {h["hit_id"] for h in later.json()["hits"]}
        assert (await client.get("/v1/hits/00000000-0000-0000-0000-000000000000", headers=officer)).status_code == 404

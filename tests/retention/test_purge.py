"""The retention purge over 120 days of generated reads: what it destroys and keeps (rows, objects, hit events),
holds, dry run, idempotence, interruption, the destruction record and the retention check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from services.ingest import retention
from services.ingest.main import create_app
from services.ingest.writer import ensure_partition
from shared.acting_for import act_for_claims
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.retention.data import JPEG, add_hit_events, generate, own_events, own_reads
from tests.support.apps import running

AGENCY = "MN0279901"
DAYS, PER_DAY = 120, 3


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_purge_destroys_what_is_due_and_keeps_holds(settings: Settings, make_token: TokenFactory) -> None:
    s = ingest_settings(settings)
    supervisor = make_token(subject="sup-ret", roles=["supervisor"], agency=AGENCY, badge="S-1")
    service = make_token(subject="service:access", roles=["service"])
    app = create_app(s, run_worker=False)
    async with running(app) as client:
        engine, store = app.state.engine, app.state.store
        now = datetime.now(UTC)
        started = now - timedelta(minutes=1)
        gen = await generate(engine, store, now=now, days=DAYS, per_day=PER_DAY, units=("C1", "C2"), agency=AGENCY)
        # An object whose upload never got its row, in a due day: the purge lists by prefix, so it goes too.
        orphan_day = (now - timedelta(days=75)).date()
        orphan = f"reads/{orphan_day:%Y/%m/%d}/{uuid.uuid4()}.dead.jpg"
        await store.put(orphan, JPEG)
        await add_hit_events(engine, gen.reads)

        # What is due, computed here from the rule (a day goes once its first moment is 60 days old).
        def due(at: datetime) -> bool:
            first = datetime(at.year, at.month, at.day, tzinfo=UTC)
            return first <= now - timedelta(days=s.retention_days)

        # Holds: two old reads for a case, one young (kept anyway).
        old = [r for r in gen.reads if due(r.captured_at)]
        young = [r for r in gen.reads if not due(r.captured_at)]
        held = [old[5], old[-4]]
        resp = await client.post(
            "/v1/holds",
            json={
                "case_number": "CR-26-0099",
                "reason": "burglary series: reads place the suspect's car near two scenes",
                "read_ids": [str(r.read_id) for r in held] + [str(young[0].read_id)],
            },
            headers=_auth(supervisor),
        )
        assert resp.status_code == 201, resp.text
        hold_id = resp.json()["hold_id"]
        assert resp.json()["reads"] == 3

        # Every read carries its classification: private, active investigative once a case holds it.
        async def classification() -> dict[uuid.UUID, str]:
            async with engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT id, classification FROM ingest.reads WHERE id = ANY(:ids)"),
                    {"ids": [r.read_id for r in gen.reads]},
                )
                return {row.id: row.classification for row in result}

        held_ids = {r.read_id for r in held} | {young[0].read_id}
        classes = await classification()
        assert {classes[i] for i in held_ids} == {"active_investigative"}
        assert {c for i, c in classes.items() if i not in held_ids} == {"private"}
        query = {
            "plates": [],
            "area": {"lat": 45.03, "lon": -93.36, "radius_m": 50},
            "start": (young[0].captured_at - timedelta(seconds=1)).isoformat(),
            "end": (young[0].captured_at + timedelta(seconds=1)).isoformat(),
            "agency": AGENCY,
        }
        # As access calls it: a token signed for this query under a grant (shared/acting_for.py).
        granted = make_token(subject="service:access", **act_for_claims("grant-ret", AGENCY, query))
        found = await client.post("/v1/internal/reads/search", json=query, headers=_auth(granted))
        assert found.status_code == 200, found.text
        assert {r["read_id"]: r["classification"] for r in found.json()["reads"]}[str(young[0].read_id)] == (
            "active_investigative"
        )
        bad = await client.post(
            "/v1/holds",
            json={"case_number": "X", "reason": "nope nope", "read_ids": [str(uuid.uuid4())]},
            headers=_auth(supervisor),
        )
        assert bad.status_code == 404 and "no such reads" in bad.json()["detail"]

        all_keys = {k for r in gen.reads for k in r.keys} | {orphan}
        doomed_reads = {r.read_id for r in old} - {r.read_id for r in held}
        doomed_keys = {k for r in old if r not in held for k in r.keys} | {orphan}
        kept_keys = all_keys - doomed_keys

        # The check before any purge: every unheld read older than 60 days is a violation.
        report = await retention.check(engine, store, s, at=now)
        strictly_old = [r for r in gen.reads if r.captured_at < now - timedelta(days=60) and r not in held]
        assert report["ok"] is False
        assert report["reads_overdue"] == len(strictly_old)

        # Dry run: the same figures, nothing destroyed.
        dry = await retention.purge(engine, store, s, actor="test", trigger="cli", dry_run=True, at=now)
        assert dry.reads_destroyed == len(doomed_reads)
        assert dry.reads_kept_held == len(held)
        mine = lambda keys: {k for k in keys if k in all_keys}  # noqa: E731 - other tests' objects are not ours
        assert await own_reads(engine, AGENCY) == {r.read_id for r in gen.reads}
        assert mine(await store.list("reads/")) == all_keys

        # Interrupted: one day's objects deleted, its rows not yet (a crash between the two steps), then a run that
        # stops after five days. Neither leaves anything half done for the next run.
        first_day = min(r.captured_at.date() for r in old)
        await retention.delete_day_objects(engine, store, first_day)
        partial = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now, max_days=5)
        assert partial.status == "partial"
        full = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert full.status == "finished"
        assert partial.reads_destroyed + full.reads_destroyed == len(doomed_reads)

        left = await own_reads(engine, AGENCY)
        assert left == {r.read_id for r in gen.reads} - doomed_reads
        assert mine(await store.list("reads/")) == kept_keys
        assert await own_events(engine, {r.read_id for r in gen.reads}) == left
        assert full.partitions_dropped + partial.partitions_dropped == len({r.captured_at.date() for r in old}) - 2

        # Twice: nothing more goes.
        again = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert (again.reads_destroyed, again.objects_destroyed, again.partitions_dropped) == (0, 0, 0)
        assert await own_reads(engine, AGENCY) == left

        ok = await retention.check(engine, store, s, at=now)
        assert ok["ok"] is True, ok
        assert ok["reads_held_past_period"] >= 2

        # A planted violation: a read and an object in a purged day, behind the purge's back.
        planted_day = (now - timedelta(days=90)).date()
        planted_at = datetime(planted_day.year, planted_day.month, planted_day.day, 10, tzinfo=UTC)
        async with engine.begin() as conn:
            await ensure_partition(conn, planted_day)
            await conn.execute(
                text(
                    "INSERT INTO ingest.reads (id, captured_at, received_at, agency, unit, camera, client_read_id, "
                    "lat, lon, recognition_pending, match_pending, attempts, hits) VALUES "
                    "(:id, :at, :at, :ag, 'C9', 'front', 'planted', 45, -93, false, false, 0, '[]'::jsonb)"
                ),
                {"id": uuid.uuid4(), "at": planted_at, "ag": AGENCY},
            )
        planted_key = f"reads/{planted_day:%Y/%m/%d}/{uuid.uuid4()}.late.jpg"
        await store.put(planted_key, JPEG)
        caught = await retention.check(engine, store, s, at=now)
        assert (caught["ok"], caught["reads_overdue"], caught["objects_overdue"]) == (False, 1, 1)
        assert planted_key in caught["objects_overdue_sample"]
        await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert (await retention.check(engine, store, s, at=now))["ok"] is True

        # Released: the held reads follow the normal clock and go at the next purge.
        resp = await client.post(
            f"/v1/holds/{hold_id}/release", json={"reason": "case closed"}, headers=_auth(supervisor)
        )
        assert resp.status_code == 200 and resp.json()["released_at"]
        assert (
            await client.post(f"/v1/holds/{hold_id}/release", json={"reason": "again"}, headers=_auth(supervisor))
        ).status_code == 409
        assert (await classification())[young[0].read_id] == "private"
        last = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert last.reads_destroyed == len(held)
        assert await own_reads(engine, AGENCY) == {r.read_id for r in young}
        assert mine(await store.list("reads/")) == {k for r in young for k in r.keys}

        # The destruction records, as the access service's reports get them.
        resp = await client.get(
            "/v1/internal/retention",
            params={"start": started.isoformat(), "end": (now + timedelta(hours=1)).isoformat()},
            headers=_auth(service),
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        runs = [p for p in body["purges"] if p["actor"] == "test"]
        assert sum(p["reads_destroyed"] for p in runs) == len(doomed_reads) + len(held) + 1
        assert body["holds_placed"] >= 1 and body["holds_released"] >= 1
        assert body["check"]["ok"] is True
        async with engine.connect() as conn:
            actions = {
                r[0]
                for r in await conn.execute(text("SELECT action FROM audit.audit_log WHERE case_number = 'CR-26-0099'"))
            }
        assert {"hold.place", "hold.release"} <= actions

        # Leave no generated data for the report tests' periods.
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM ingest.reads WHERE agency = :a"), {"a": AGENCY})
        await store.delete_keys(sorted({k for r in young for k in r.keys}))


async def test_holds_need_a_supervisor(settings: Settings, make_token: TokenFactory) -> None:
    app = create_app(ingest_settings(settings), run_worker=False)
    officer = make_token(subject="o-ret", roles=["officer"], badge="1")
    async with running(app) as client:
        resp = await client.post(
            "/v1/holds",
            json={"case_number": "C", "reason": "why not", "read_ids": [str(uuid.uuid4())]},
            headers=_auth(officer),
        )
        assert resp.status_code == 403
        assert isinstance(client, httpx.AsyncClient)


def test_cli_purge_and_check(settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from alpr.cli import build_parser
    from shared.logs import configure_logging

    configure_logging("WARNING", json=True, service="cli")  # as `alpr` does: logs to stderr, the report to stdout
    args = build_parser().parse_args(["purge", "--dry-run"])
    assert args.func(args, settings) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["reads"]["status"] == "finished" and "hits_destroyed" in out["hits"]
    args = build_parser().parse_args(["retention", "check"])
    code = args.func(args, settings)
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["ok"] else 1)
    assert {"reads", "hits"} <= set(report)


async def test_safe_at_home_destroys_now_and_later(settings: Settings, make_token: TokenFactory) -> None:
    s = ingest_settings(settings)
    agency = "MN0279902"
    supervisor = make_token(subject="sup-sah", roles=["supervisor"], badge="S-3", agency=agency)
    app = create_app(s, run_worker=False)
    async with running(app) as client:
        engine, store = app.state.engine, app.state.store
        now = datetime.now(UTC)
        gen = await generate(engine, store, now=now, days=4, per_day=2, units=("C7",), agency=agency)
        target = [gen.reads[1], gen.reads[4]]
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE ingest.reads SET plate = 'SAH123' WHERE id = :a"), {"a": target[0].read_id})
            # The car read it, recognition read something else: the car's reading counts too.
            await conn.execute(
                text("UPDATE ingest.reads SET car_plate = 'SAH123' WHERE id = :a"), {"a": target[1].read_id}
            )
        resp = await client.post(
            "/v1/subject-requests/safe-at-home",
            json={"plate": "sah 123", "request_reference": "SAH-2026-4", "received_on": now.isoformat()},
            headers=_auth(supervisor),
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["reads_destroyed"] == 2
        assert resp.json()["objects_destroyed"] == sum(len(r.keys) for r in target)
        left = await own_reads(engine, agency)
        assert left == {r.read_id for r in gen.reads} - {r.read_id for r in target}
        stored = set(await store.list("reads/"))
        assert not any(k in stored for r in target for k in r.keys)
        async with engine.connect() as conn:
            details = (
                await conn.execute(
                    text("SELECT details::text FROM audit.audit_log WHERE action = 'subject_request.safe_at_home'")
                )
            ).scalars()
            # The request is private: its reference, never the plate, is in the audit log.
            assert all("SAH123" not in d.replace(" ", "").upper() for d in details)

        # A read stored before its plate was known (recognition was down) and read as the protected plate later:
        # the worker destroys it instead of matching it.
        pending = await generate(engine, store, now=now, days=1, per_day=1, units=("C7",), agency=agency)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE ingest.reads SET plate = 'SAH123', match_pending = true WHERE id = :a"),
                {"a": pending.reads[0].read_id},
            )
        assert await app.state.ingest_worker.finish_pending() >= 1
        assert pending.reads[0].read_id not in await own_reads(engine, agency)
        objects_left = set(await store.list("reads/"))
        assert pending.reads[0].keys and not any(k in objects_left for k in pending.reads[0].keys)

        # A read the purge's check sees (stored some other way) is gone at the next purge run.
        later = await generate(engine, store, now=now, days=1, per_day=1, units=("C7",), agency=agency)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE ingest.reads SET plate = 'SAH123' WHERE id = :a"), {"a": later.reads[0].read_id}
            )
        report = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert report.reads_destroyed >= 1
        assert later.reads[0].read_id not in await own_reads(engine, agency)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM ingest.reads WHERE agency = :a"), {"a": agency})


async def test_purge_covers_what_camera_agents_left(settings: Settings) -> None:
    """Agent-side records (the agent's plate, candidates, keys) and quarantined posts follow the reads' clock."""
    s = ingest_settings(settings)
    app = create_app(s, run_worker=False)
    async with running(app):
        engine, store = app.state.engine, app.state.store
        now = datetime.now(UTC)
        old, young = now - timedelta(days=90), now - timedelta(days=2)
        agent = uuid.uuid4()
        rows = {"old": (uuid.uuid4(), old), "young": (uuid.uuid4(), young), "held": (uuid.uuid4(), old)}
        async with engine.begin() as conn:
            for name, (read_id, at) in rows.items():
                await conn.execute(
                    text(
                        "INSERT INTO ingest.agent_reads (read_id, captured_at, agent_id, source, is_preview, "
                        "agent_plate, corners, candidates, keys, location_source, finish_pending, updated_at) "
                        "VALUES (:r, :at, :a, 'alpr_results', false, :p, '[]', '[]', '{}', 'gps', false, :at)"
                    ),
                    {"r": read_id, "at": at, "a": agent, "p": f"AG{name.upper()[:4]}1"},
                )
                await conn.execute(
                    text(
                        "INSERT INTO ingest.agent_read_keys (agent_id, key, read_id, captured_at) "
                        "VALUES (:a, :k, :r, :at)"
                    ),
                    {"a": agent, "k": f"{read_id}#0", "r": read_id, "at": at},
                )
            for at in (old, young):
                await conn.execute(
                    text(
                        "INSERT INTO ingest.agent_quarantine (id, agent_id, received_at, data_type, reason, body) "
                        "VALUES (:id, :a, :at, 'alpr_results', 'malformed', :b)"
                    ),
                    {"id": uuid.uuid4(), "a": agent, "at": at, "b": b'{"plate": "ABC123"'},
                )
            hold = uuid.uuid4()
            await conn.execute(
                text(
                    "INSERT INTO ingest.holds (id, case_number, reason, kind, classification, placed_by, placed_at) "
                    "VALUES (:id, 'CR-26-7', 'agent read in a case', 'investigation', 'active_investigative', "
                    "'sup', :at)"
                ),
                {"id": hold, "at": now},
            )
            await conn.execute(
                text("INSERT INTO ingest.hold_reads (hold_id, read_id, captured_at) VALUES (:h, :r, :at)"),
                {"h": hold, "r": rows["held"][0], "at": old},
            )

        before = await retention.check(engine, store, s, at=now)
        assert before["agent_records_overdue"] >= 3  # the old read's two rows and the old quarantined post

        report = await retention.purge(engine, store, s, actor="test", trigger="cli", at=now)
        assert report.agent_records_destroyed >= 3

        async with engine.connect() as conn:
            left = {
                r.read_id
                for r in await conn.execute(
                    text("SELECT read_id FROM ingest.agent_reads WHERE agent_id = :a"), {"a": agent}
                )
            }
            keys = (
                await conn.execute(
                    text("SELECT count(*) FROM ingest.agent_read_keys WHERE agent_id = :a"), {"a": agent}
                )
            ).scalar_one()
            quarantined = [
                r.received_at
                for r in await conn.execute(
                    text("SELECT received_at FROM ingest.agent_quarantine WHERE agent_id = :a"), {"a": agent}
                )
            ]
        assert left == {rows["young"][0], rows["held"][0]}
        assert keys == 2
        assert len(quarantined) == 1 and quarantined[0] > now - timedelta(days=3)
        assert (await retention.check(engine, store, s, at=now))["agent_records_overdue"] == 0

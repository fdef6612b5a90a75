"""Hits over 120 days: the report figures hotlist gives the access service, then the hit purge with a hold
(verifications and dispositions go with their hits), idempotence and the check."""

from __future__ import annotations

import functools
import statistics
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.hotlist import retention
from services.hotlist.main import create_app
from services.ingest.holds import held_among
from shared.errors import Unavailable
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.support.apps import running

CATEGORIES = ("stolen_vehicle", "wanted_person", "missing_person")


async def test_hit_figures_and_purge(settings: Settings, make_token: TokenFactory) -> None:
    s = settings.model_copy(update={"hotlist_sync_scheduled": False})
    supervisor = make_token(subject="sup-hits", roles=["supervisor"], badge="S-2")
    service = make_token(subject="service:access", roles=["service"])
    app = create_app(s)
    now = datetime.now(UTC)
    async with running(app) as client:
        engine = app.state.engine
        start, end = now - timedelta(days=121), now - timedelta(hours=12)

        async def figures(a: datetime, b: datetime) -> dict:
            resp = await client.get(
                "/v1/internal/report",
                params={"start": a.isoformat(), "end": b.isoformat(), "agency": "MN0271200"},
                headers={"Authorization": f"Bearer {service}"},
            )
            assert resp.status_code == 200, resp.text
            return resp.json()

        # Other tests' hits may fall in the period: the figures are compared as the change our hits make.
        before = await figures(start, end)
        hits: list[dict] = []
        disps: list[dict] = []
        async with engine.begin() as conn:
            for d in range(1, 121, 2):
                at = now - timedelta(days=d, hours=1)
                hit = {
                    "id": uuid.uuid4(),
                    "cat": CATEGORIES[d % 3],
                    "unit": f"RET-H{d % 2 + 1}",
                    "at": at,
                    "list": "bca" if d % 4 else "gang-task-force",
                    "read": str(uuid.uuid4()),
                }
                hits.append(hit)
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, "
                        "concerns, match, read_plate, entry_plate, state_check, covert, priority, past_read, unit, "
                        "agency, captured_at, created_at) VALUES (:id, :r, 'V1', :l, :c, :c, 'vehicle', 'exact', "
                        "'ABC123', 'ABC123', 'match', false, 0, false, :u, 'MN0271200', :at, :at)"
                    ),
                    {
                        "id": hit["id"],
                        "r": hit["read"],
                        "l": hit["list"],
                        "c": hit["cat"],
                        "u": hit["unit"],
                        "at": at,
                    },
                )
                if d % 3 == 0:
                    continue  # no disposition yet
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hit_verifications (id, hit_id, read_accurate, state_matches, "
                        "still_current, by, at) VALUES (:id, :h, true, true, true, 'o', :at)"
                    ),
                    {"id": uuid.uuid4(), "h": hit["id"], "at": at + timedelta(minutes=1)},
                )
                first = {
                    "id": uuid.uuid4(),
                    "hit": hit["id"],
                    "valid": d % 5 != 0,
                    "action": "arrest" if d % 2 else "none",
                    "at": at + timedelta(minutes=d % 7 + 2),
                }
                disps.append(first)
                if d % 11 == 0:  # a correction: the last disposition is the one in force
                    disps.append(
                        {
                            "id": uuid.uuid4(),
                            "hit": hit["id"],
                            "valid": False,
                            "action": "misread",
                            "at": first["at"] + timedelta(minutes=30),
                            "corrects": first["id"],
                        }
                    )
            for disp in disps:
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.hit_dispositions (id, hit_id, valid, action, corrects, by, at) "
                        "VALUES (:id, :h, :v, :a, :c, 'o', :at)"
                    ),
                    {
                        "id": disp["id"],
                        "h": disp["hit"],
                        "v": disp["valid"],
                        "a": disp["action"],
                        "c": disp.get("corrects"),
                        "at": disp["at"],
                    },
                )

        # Report figures against counts computed here.
        fig = await figures(start, end)

        def delta(key: str) -> dict:
            return {k: v - before[key].get(k, 0) for k, v in fig[key].items() if v != before[key].get(k, 0)}

        assert fig["hits_total"] - before["hits_total"] == len(hits)
        assert delta("hits_by_category") == dict(Counter(h["cat"] for h in hits))
        assert delta("hits_by_list") == dict(Counter(h["list"] for h in hits))
        last = {}
        for disp in sorted(disps, key=lambda x: x["at"]):
            last[disp["hit"]] = disp
        outcomes = Counter(f"{'valid' if x['valid'] else 'invalid'}:{x['action']}" for x in last.values())
        assert delta("dispositions_by_outcome") == dict(outcomes)
        firsts = {}
        for disp in sorted(disps, key=lambda x: x["at"]):
            firsts.setdefault(disp["hit"], disp)
        assert fig["hits_with_disposition"] - before["hits_with_disposition"] == len(firsts)
        per_unit_day = Counter((h["unit"], h["at"].date().isoformat()) for h in hits)
        mine = {(x["unit"], x["day"]): x["hits"] for x in fig["hits_by_unit_day"] if x["unit"].startswith("RET-H")}
        assert mine == dict(per_unit_day)
        # Minutes to disposition over a window only our hits use (100 to 120 days back).
        a, b = now - timedelta(days=120), now - timedelta(days=100)
        at_of = {h["id"]: h["at"] for h in hits}
        waits = [(x["at"] - at_of[x["hit"]]).total_seconds() / 60 for x in firsts.values() if a <= at_of[x["hit"]] < b]
        window = await figures(a, b)
        assert window["hits_with_disposition"] == len(waits)
        assert abs(window["minutes_to_disposition"]["p50"] - statistics.median(waits)) < 0.01

        # A hold on one old hit with dispositions, then the purge.
        old = [h for h in hits if h["at"] < retention.cutoff_for(s, now)]
        held = next(h for h in old if any(x["hit"] == h["id"] for x in disps))
        resp = await client.post(
            "/v1/hit-holds",
            json={
                "case_number": "CR-26-0100",
                "reason": "pending charge: hit record kept",
                "hit_ids": [str(held["id"])],
            },
            headers={"Authorization": f"Bearer {supervisor}"},
        )
        assert resp.status_code == 201, resp.text
        # A hold in ingest on another old hit's read keeps that hit too (a case keeps the alert with its read).
        read_held = next(h for h in old if h is not held)
        hold_id = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO ingest.holds (id, kind, case_number, reason, classification, placed_by, placed_at) "
                    "VALUES (:id, 'investigation', 'CR-26-0101', 'read, alert', 'active_investigative', 's', now())"
                ),
                {"id": hold_id},
            )
            await conn.execute(
                text("INSERT INTO ingest.hold_reads (hold_id, read_id, captured_at) VALUES (:h, :r, :at)"),
                {"h": hold_id, "r": uuid.UUID(read_held["read"]), "at": read_held["at"]},
            )
        held_reads = functools.partial(held_among, engine)
        dry = await retention.purge(engine, s, held_reads=held_reads, actor="test", trigger="cli", dry_run=True, at=now)
        report = await retention.purge(engine, s, held_reads=held_reads, actor="test", trigger="cli", at=now)
        assert report.hits_destroyed == dry.hits_destroyed >= len(old) - 2
        assert report.hits_kept_read_held == dry.hits_kept_read_held == 1
        doomed = {h["id"] for h in old} - {held["id"], read_held["id"]}
        async with engine.connect() as conn:
            ours = [h["id"] for h in hits]
            left = {
                r[0] for r in await conn.execute(text("SELECT id FROM hotlist.hits WHERE id = ANY(:i)"), {"i": ours})
            }
            left_disp = {
                r[0]
                for r in await conn.execute(
                    text("SELECT hit_id FROM hotlist.hit_dispositions WHERE hit_id = ANY(:i)"), {"i": ours}
                )
            }
        assert left == set(ours) - doomed
        assert left_disp <= left and held["id"] in left_disp
        again = await retention.purge(engine, s, held_reads=held_reads, actor="test", trigger="cli", at=now)
        assert again.hits_destroyed == 0
        assert (await retention.check(engine, s, held_reads=held_reads, at=now))["ok"] is True

        # Ingest not answering: nothing goes, and the run says why.
        async def unreachable(read_ids: list[str]) -> set[str]:
            raise Unavailable("ingest unreachable: ConnectError")

        async with engine.begin() as conn:
            await conn.execute(text("UPDATE ingest.holds SET released_at = now() WHERE id = :h"), {"h": hold_id})
        stopped = await retention.purge(engine, s, held_reads=unreachable, actor="test", trigger="cli", at=now)
        assert (stopped.status, stopped.hits_destroyed) == ("partial", 0) and "ingest" in (stopped.error or "")
        assert (await retention.check(engine, s, held_reads=unreachable, at=now))["ok"] is False
        # Released: the hit follows the normal clock again.
        released = await retention.purge(engine, s, held_reads=held_reads, actor="test", trigger="cli", at=now)
        assert released.hits_destroyed == 1 and released.hits_kept_read_held == 0
        assert (await retention.check(engine, s, held_reads=held_reads, at=now))["ok"] is True
        # A planted violation: an old hit written behind the purge's back is caught, then purged.
        planted = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                    "match, read_plate, entry_plate, state_check, covert, priority, past_read, unit, captured_at, "
                    "created_at) VALUES (:id, 'r', 'V', 'bca', 'c', 'c', 'vehicle', 'exact', 'X', 'X', 'match', "
                    "false, 0, false, 'RET-H9', :at, :at)"
                ),
                {"id": planted, "at": now - timedelta(days=80)},
            )
        caught = await retention.check(engine, s, held_reads=held_reads, at=now)
        assert (caught["ok"], caught["hits_overdue"]) == (False, 1)
        purged = await retention.purge(engine, s, held_reads=held_reads, actor="test", trigger="cli", at=now)
        assert purged.hits_destroyed == 1
        assert (await retention.check(engine, s, held_reads=held_reads, at=now))["ok"] is True
        # Dispositions stay append-only outside the purge.
        async with engine.connect() as conn:
            try:
                await conn.execute(text("DELETE FROM hotlist.hit_dispositions WHERE hit_id = :h"), {"h": held["id"]})
                refused = False
            except Exception:  # noqa: BLE001
                refused = True
        assert refused
        async with engine.begin() as conn:  # leave no generated hits for the report tests' periods
            await conn.execute(text("SELECT set_config('alpr.retention_purge', 'on', true)"))
            for table, col in (("hit_verifications", "hit_id"), ("hit_dispositions", "hit_id"), ("hits", "id")):
                await conn.execute(text(f"DELETE FROM hotlist.{table} WHERE {col} = ANY(:i)"), {"i": ours})

"""Daily facts: the log of use (private and public) and the biennial audit read the same for a period before and
after the purge destroys it; counts by category and classification; covert hits in the public
version by category only."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from services.access.main import create_app as access_app
from services.hotlist import retention as hit_retention
from services.hotlist.main import create_app as hotlist_app
from services.ingest import retention
from services.ingest.holds import held_among
from services.ingest.main import create_app as ingest_app
from services.ingest.writer import READS, ensure_partition
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

UNITS = ("FCT-1", "FCT-2")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what changes by itself between two calls (the time it was made, the live retention check)."""
    out = {k: v for k, v in report.items() if k not in {"generated_at", "retention", "audit_chain", "access"}}
    if "log_of_use" in out:
        out["log_of_use"] = _stable(out["log_of_use"])
    out.pop("fixed_readers", None)
    if "hits" in out:  # minutes to a disposition are measured on the hits still stored (not a statutory figure)
        out["hits"] = {k: v for k, v in out["hits"].items() if k != "minutes_to_disposition"}
    return out


async def test_reports_survive_the_purge(settings: Settings, make_token: TokenFactory) -> None:
    now = datetime.now(UTC)
    first = (now - timedelta(days=400)).date()  # clear of the periods other retention tests fill
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = start + timedelta(days=4)  # every day of it is due
    s = settings.model_copy(update={"hotlist_sync_scheduled": False})
    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    hotlist = hotlist_app(s)
    async with running(ingest), running(hotlist):
        access = access_app(
            settings,
            ingest_transport=httpx.ASGITransport(app=ingest),
            hotlist_transport=httpx.ASGITransport(app=hotlist),
        )
        async with running(access) as client:
            engine = ingest.state.engine
            reads: list[dict[str, Any]] = []
            shifts = []
            for d in range(4):
                for u, unit in enumerate(UNITS):
                    s_at = start + timedelta(days=d, hours=8 + u)
                    sid = uuid.uuid4()
                    shifts.append({"id": sid, "u": unit, "s": s_at, "e": s_at + timedelta(hours=6)})
                    for i in range(6 + d):
                        reads.append(
                            {
                                "id": uuid.uuid4(),
                                "captured_at": s_at + timedelta(minutes=7 * i + 1),
                                "received_at": s_at,
                                "agency": "MN0271200",
                                "unit": unit,
                                "shift_id": sid,
                                "camera": "front",
                                "client_read_id": f"fct-{uuid.uuid4()}",
                                "lat": 45.0,
                                "lon": -93.3,
                                # a repeat every third read, no plate every fifth
                                "plate": None if i % 5 == 4 else f"F{d}{u}{i // 3}",
                                "recognition_pending": False,
                                "match_pending": False,
                                "attempts": 0,
                                "hits": [],
                                "classification": "active_investigative" if i == 0 else "private",
                            }
                        )
            hits = []
            for k, r in enumerate(r for r in reads if r["plate"] and r["captured_at"].minute % 2 == 0):
                cat, lst, covert = [
                    ("stolen_vehicle", "bca", False),
                    ("warrant", "bca", False),
                    ("investigation", "fct-covert", True),
                ][k % 3]
                hits.append(
                    {
                        "id": uuid.uuid4(),
                        "r": str(r["id"]),
                        "c": cat,
                        "l": lst,
                        "cv": covert,
                        "u": r["unit"],
                        "at": r["captured_at"],
                    }
                )
            async with engine.begin() as conn:
                for day in sorted({r["captured_at"].date() for r in reads}):
                    await ensure_partition(conn, day)
            async with engine.begin() as conn:
                await conn.execute(READS.insert(), reads)
                for sh in shifts:
                    await conn.execute(
                        text(
                            "INSERT INTO ingest.shifts (id, unit, agency, badge, officer, cameras, started_at, "
                            "expires_at, ended_at, end_reason) VALUES (:id, :u, 'MN0271200', 'B-1', 'officer-f', "
                            "ARRAY['front'], :s, :e, :e, 'logout')"
                        ),
                        sh,
                    )
                for h in hits:
                    await conn.execute(
                        text(
                            "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, "
                            "concerns, match, read_plate, entry_plate, state_check, covert, priority, past_read, "
                            "agency, unit, captured_at, created_at) VALUES (:id, :r, 'V1', :l, :c, :c, 'vehicle', "
                            "'exact', 'X', 'X', 'match', :cv, 0, false, 'MN0271200', :u, :at, :at)"
                        ),
                        h,
                    )
                for h in hits[:4]:
                    await conn.execute(
                        text(
                            "INSERT INTO hotlist.hit_dispositions (id, hit_id, valid, action, by, at) "
                            "VALUES (:id, :h, true, 'stop', 'officer-f', :at)"
                        ),
                        {"id": uuid.uuid4(), "h": h["id"], "at": h["at"] + timedelta(minutes=3)},
                    )

                # An agency list in force through the period: the databases compared must survive the purge too.
                await conn.execute(
                    text(
                        "INSERT INTO hotlist.agency_lists (id, agency, name, owner, priority, covert, "
                        "past_read_matching, created_by, created_at, changed_at) "
                        "VALUES (:id, 'MN0271200', :n, 'MN0271200', 0, false, false, 'sup-fct', :at, :at)"
                    ),
                    {"id": uuid.uuid4(), "n": f"fct-db-{uuid.uuid4().hex[:6]}", "at": start - timedelta(days=1)},
                )

            supervisor = make_token(subject="sup-fct", roles=["supervisor"], badge="S-3", agency="MN0271200")
            auditor = make_token(subject="aud-fct", roles=["auditor"], agency="MN0271200")
            params = {"start": start.isoformat(), "end": end.isoformat()}

            async def reports() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
                log = await client.get("/v1/reports/log-of-use", params=params, headers=_auth(supervisor))
                pub = await client.get("/v1/public/log-of-use", params={**params, "agency": "MN0271200"})
                aud = await client.get("/v1/reports/audit", params=params, headers=_auth(auditor))
                assert log.status_code == pub.status_code == aud.status_code == 200, (log.text, aud.text)
                return log.json(), pub.json(), aud.json()

            log, pub, aud = await reports()
            ours = {u["unit"]: u for u in log["units"] if u["unit"] in UNITS}
            for unit in UNITS:
                mine = [r for r in reads if r["unit"] == unit]
                u = ours[unit]
                assert u["reads"] == len(mine)
                assert u["reads_no_plate"] == sum(1 for r in mine if r["plate"] is None)
                assert u["plates_read"] == u["reads"] - u["reads_no_plate"]
                per_day = {}
                for r in mine:
                    per_day.setdefault(r["captured_at"].date(), set()).add(r["plate"])
                assert u["distinct_plates"] == sum(len(p - {None}) for p in per_day.values())
                mine_hits = [h for h in hits if h["u"] == unit]
                assert u["hits"] == len(mine_hits)
                cats: dict[str, int] = {}
                for h in mine_hits:
                    cats[h["c"]] = cats.get(h["c"], 0) + 1
                assert u["hits_by_category"] == cats
                # The public version counts covert-list hits in their category (subd. 5(a)(3)), the list unnamed.
                pu = next(x for x in pub["units"] if x["unit"] == unit)
                assert pu["hits"] == len(mine_hits) and pu["hits_by_category"] == cats
            assert "fct-covert" not in str(pub) and "fct-covert" in str(log["totals"]["hits_by_list"])
            cls = aud["classification"]["reads"]
            assert cls.get("active_investigative", 0) >= 8 and cls.get("private", 0) >= len(reads) - 8
            assert aud["hits"]["dispositions_by_outcome"].get("valid:stop", 0) >= 4

            # ---- the purge destroys the period; the reports do not change
            ingest_s = ingest_settings(settings)
            await retention.purge(engine, ingest.state.store, ingest_s, actor="test-facts", trigger="cli", at=now)
            held = functools.partial(held_among, engine)
            await hit_retention.purge(engine, s, held_reads=held, actor="test-facts", trigger="cli", at=now)
            async with engine.connect() as conn:
                left = (
                    await conn.execute(
                        text("SELECT count(*) FROM ingest.reads WHERE unit = ANY(:u)"), {"u": list(UNITS)}
                    )
                ).scalar_one()
                left_hits = (
                    await conn.execute(
                        text("SELECT count(*) FROM hotlist.hits WHERE unit = ANY(:u)"), {"u": list(UNITS)}
                    )
                ).scalar_one()
            assert left == 0 and left_hits == 0
            log2, pub2, aud2 = await reports()
            assert _stable(log2) == _stable(log)
            assert _stable(pub2) == _stable(pub)
            assert _stable(aud2) == _stable(aud)
            assert any(x["name"].startswith("fct-db-") for x in log2["databases_compared"]["agency_lists"])
            # A second purge over sealed days changes nothing (idempotent).
            await retention.purge(engine, ingest.state.store, ingest_s, actor="test-facts", trigger="cli", at=now)
            await hit_retention.purge(engine, s, held_reads=held, actor="test-facts", trigger="cli", at=now)
            log3, _, _ = await reports()
            assert _stable(log3) == _stable(log)

            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM ingest.shifts WHERE unit = ANY(:u)"), {"u": list(UNITS)})
                await conn.execute(text("DELETE FROM hotlist.agency_lists WHERE name LIKE 'fct-db-%'"))


async def test_end_of_day_facts_are_written_once_and_stay_unsealed(settings: Settings) -> None:
    """The scheduled purge's first step: every finished day with reads or hits gets its facts (not sealed: the
    reports keep counting that day live until the purge seals it)."""
    from services.hotlist import facts as hit_facts
    from services.ingest import facts

    ingest = ingest_app(ingest_settings(settings), run_worker=False)
    async with running(ingest):
        engine = ingest.state.engine
        day = (datetime.now(UTC) - timedelta(days=3)).date()
        at = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
        rows = [
            {"id": uuid.uuid4(), "captured_at": at + timedelta(minutes=i), "received_at": at, "agency": "MN0271200",
             "unit": "FCT-EOD", "camera": "front", "client_read_id": f"eod-{uuid.uuid4()}", "lat": 45.0, "lon": -93.3,
             "plate": f"EOD{i % 3}", "recognition_pending": False, "match_pending": False, "attempts": 0, "hits": []}
            for i in range(7)
        ]  # fmt: skip
        async with engine.begin() as conn:
            await ensure_partition(conn, day)
            await conn.execute(text("DELETE FROM ingest.read_fact_days WHERE day = :d AND NOT sealed"), {"d": day})
            await conn.execute(text("DELETE FROM hotlist.hit_fact_days WHERE day = :d AND NOT sealed"), {"d": day})
        async with engine.begin() as conn:
            await conn.execute(READS.insert(), rows)
            await conn.execute(
                text(
                    "INSERT INTO hotlist.hits (id, read_id, entry_id, list_name, category, category_label, concerns, "
                    "match, read_plate, entry_plate, state_check, covert, priority, past_read, unit, captured_at, "
                    "created_at) VALUES (:id, 'eod', 'V', 'bca', 'warrant', 'w', 'vehicle', 'exact', 'X', 'X', "
                    "'match', false, 0, false, 'FCT-EOD', :at, :at)"
                ),
                {"id": uuid.uuid4(), "at": at},
            )
        assert day in await facts.write_pending(engine)
        assert day not in await facts.write_pending(engine)  # once
        await hit_facts.write_pending(engine)
        async with engine.connect() as conn:
            got = (
                await conn.execute(
                    text(
                        "SELECT sum(reads), sum(distinct_plates) FROM ingest.read_facts WHERE day = :d "
                        "AND unit = 'FCT-EOD'"
                    ),
                    {"d": day},
                )
            ).one()
            sealed = (
                await conn.execute(text("SELECT sealed FROM ingest.read_fact_days WHERE day = :d"), {"d": day})
            ).scalar_one()
            hits = (
                await conn.execute(
                    text("SELECT sum(hits) FROM hotlist.hit_facts WHERE day = :d AND unit = 'FCT-EOD'"), {"d": day}
                )
            ).scalar_one()
            await conn.execute(text("DELETE FROM ingest.reads WHERE unit = 'FCT-EOD'"))
            await conn.execute(text("DELETE FROM hotlist.hits WHERE unit = 'FCT-EOD'"))
            await conn.commit()
        assert (int(got[0]), int(got[1]), sealed, int(hits)) == (7, 3, False, 1)

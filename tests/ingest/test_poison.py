"""No input stops the line: each poisoned agent body and car read, alone and mixed into good ones, is refused or
quarantined alone; every good one is stored once; the importer keeps running; bodies are bounded while they stream
and an agent's token is checked before its body is read."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest.agents.parse import Malformed, parse
from services.ingest.main import create_app
from services.ingest.writer import ReadWriter, batch_engine
from shared.errors import Unprocessable
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import AGENCY, FIXTURES, now_ms, post, register, results_body, rows
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running


def _poisons(at: int) -> dict[str, bytes]:
    good = results_body("PSN000", at).decode()
    group = {
        "data_type": "alpr_group",
        "epoch_start": 0,
        "best_plate": {"plate": "PSN111", "confidence": 90},
        "uuids": ["g-1"],
        "best_uuid": "g-1",
    }
    return {
        "epoch_time 1e400": good.replace(f'"epoch_time": {at}', '"epoch_time": 1e400').encode(),
        "epoch_time NaN": good.replace(f'"epoch_time": {at}', '"epoch_time": NaN').encode(),
        "epoch_time 'nan'": good.replace(f'"epoch_time": {at}', '"epoch_time": "nan"').encode(),
        "epoch_time -Infinity": good.replace(f'"epoch_time": {at}', '"epoch_time": -Infinity').encode(),
        "epoch_start 1e400": json.dumps(group).replace('"epoch_start": 0', '"epoch_start": 1e400').encode(),
        "heartbeat NaN": b'{"data_type": "heartbeat", "timestamp": NaN, "agent_uid": "x"}',
        "nested 5000 deep": b'{"data_type": "alpr_results", "epoch_time": 1, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "nested 40 deep": b'{"data_type": "heartbeat", "timestamp": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}",
        "NUL in the frame key": good.replace('"uuid": "', '"uuid": "\\u0000').encode(),
        "epoch_time 1e300": good.replace(f'"epoch_time": {at}', '"epoch_time": 1e300').encode(),
    }


def test_counting_the_disallowed_fields_agrees_with_scrub() -> None:
    """`parse` counts the disallowed fields without scrub's copy: the same counts, and the same depth refused."""
    from collections import Counter

    from services.ingest.agents.parse import MAX_DEPTH, count_disallowed, loads, scrub

    def nest(n: int, inner: str) -> bytes:
        return ("[" * n + inner + "]" * n).encode()

    bodies = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.json"))] + [
        b'{"vehicle": {"make": "x", "color": "y"}, "results": [{"make": 1, "a": [{"year": 2}, {"model": []}]}]}',
        b'{"body_type": {"deep": ' + nest(40, "1") + b"}}",  # nested, but under a dropped field: never visited
    ]
    for depth in range(MAX_DEPTH - 2, MAX_DEPTH + 3):
        for inner in ("", "1", '{"make": 1}', '{"a": 1}'):
            bodies.append(b'{"x": ' + nest(depth, inner) + b"}")
    refused = 0
    for raw in bodies:
        value = loads(raw)
        counted: Counter[str] = Counter()
        copied: Counter[str] = Counter()
        try:
            scrub(value, copied)
        except Malformed:
            with pytest.raises(Malformed):
                count_disallowed(value, counted)
            refused += 1
            continue
        count_disallowed(value, counted)
        assert counted == copied, raw[:200]
    assert refused and refused < len(bodies)


# Each poison's reason names the field and the problem (issue 29: NaN, infinite and negative epochs were "without
# epoch_time", a NUL "Error").
REASONS = {
    "epoch_time 1e400": "alpr_results: epoch_time: inf is not a finite number",
    "epoch_time NaN": "alpr_results: epoch_time: nan is not a finite number",
    "epoch_time 'nan'": "alpr_results: epoch_time: 'nan' is not a finite number",
    "epoch_time -Infinity": "alpr_results: epoch_time: -inf is not a finite number",
    "epoch_start 1e400": "alpr_group: epoch_start: inf is not a finite number",
    "heartbeat NaN": "heartbeat: timestamp: nan is not a finite number",
    "nested 5000 deep": "JSON nested too deep",
    "nested 40 deep": "JSON nested deeper than 32 levels",
    "NUL in the frame key": "uuid: contains a NUL character",
    "epoch_time 1e300": "alpr_results: epoch_time: 1e+300 is past the year 9999",
}


def _six(at: int) -> dict[str, tuple[bytes, str]]:
    """The six bodies issue 29 found stored as reads, each with the reason it is now quarantined for."""
    good = results_body("SIX000", at).decode()
    no_uuid = good.replace(f'"uuid": "site-cam1-{at}", ', "")
    assert no_uuid != good
    return {
        "NUL in site_id": (
            no_uuid.replace('"site_id": ""', '"site_id": "a\\u0000b"').encode(),
            "site_id: contains a NUL character",
        ),
        "7 MB site_id": (
            no_uuid.replace('"site_id": ""', f'"site_id": "{"s" * 7_000_000}"').encode(),
            "site_id: 7000000 characters, more than 128",
        ),
        "plate_index 1e30": (
            good.replace('"plate_index": 0', '"plate_index": 1e30').encode(),
            "results[0].plate_index: 1e+30 is not an index from 0 to 9999",
        ),
        "confidence NaN": (
            good.replace(
                '"confidence": 90.5, "matches_template": 1, "plate_index"',
                '"confidence": NaN, "matches_template": 1, "plate_index"',
            ).encode(),
            "results[0].confidence: nan is not a number from 0 to 100",
        ),  # fmt: skip
        "coordinates 1e308": (
            good.replace('{"x": 1, "y": 2}', '{"x": 1e308, "y": -1e308}').encode(),
            "results[0].coordinates[0].x: 1e+308 is not a pixel position",
        ),
        "camera_id 1e40": (
            good.replace('"camera_id": 1', '"camera_id": 1e40').encode(),
            "camera_id: 1e+40 is not a camera number",
        ),
    }


def test_the_parser_refuses_each_poison_with_a_reason() -> None:
    cases = {name: (raw, REASONS[name]) for name, raw in _poisons(now_ms()).items()} | _six(now_ms())
    for name, (raw, reason) in cases.items():
        with pytest.raises(Malformed) as refused:
            parse(raw)
        assert str(refused.value) == reason, name
    assert parse(results_body("SIX000", now_ms())).reads  # the body they were made from is good


@pytest.fixture
async def live_app(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, Settings]]:
    own = ingest_settings(settings, data_dir=tmp_path, ingest_agent_import_interval_s=0.1)
    app = create_app(own)  # the importer runs on its own, as in service
    async with running(app) as client:
        yield app, client, own


async def test_poisoned_agent_posts_are_quarantined_alone_and_the_importer_goes_on(
    live_app: Any, make_token: TokenFactory
) -> None:
    app, client, own = live_app
    admin = make_token(subject="poison-admin", roles=["admin"], agency=AGENCY)
    agent = await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}")
    at = now_ms() - 60_000
    poisons = _poisons(at)
    good = [f"GD{n:04d}" for n in range(3 * len(poisons))]
    sent = 0
    for i, plate in enumerate(good):  # every poison between good posts
        resp = await post(client, agent["token"], results_body(plate, at + i, uuid=f"good-{plate}"))
        assert resp.status_code == 200, resp.text
        if i % 3 == 1:
            assert (await post(client, agent["token"], list(poisons.values())[sent])).status_code == 200
            sent += 1
    assert sent == len(poisons)

    async def stored() -> list[Any]:
        return await rows(
            own,
            "SELECT plate FROM ingest.reads WHERE client_read_id LIKE :p",
            p=f"agent:{agent['agent_id'].replace('-', '')[:12]}:%",
        )

    for _ in range(300):
        if len(await stored()) >= len(good):
            break
        await asyncio.sleep(0.1)
    plates = sorted(r.plate for r in await stored())
    assert plates == sorted(good)  # every good one, once
    quarantined = await rows(own, "SELECT reason FROM ingest.agent_quarantine WHERE agent_id = :a", a=agent["agent_id"])
    assert len(quarantined) == len(poisons)  # each alone
    reasons = " | ".join(sorted(q.reason for q in quarantined))
    assert "nested deeper" in reasons and "uuid: contains a NUL" in reasons and "nan is not a finite" in reasons
    importer = app.state.agents.importer
    assert importer._task is not None and not importer._task.done()  # still running
    assert importer.health.failures == 0
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and "agent_importer" not in ready.json().get("warnings", {}), ready.text


async def test_a_read_that_fails_the_group_commit_fails_alone(settings: Settings) -> None:
    writer = ReadWriter(batch_engine(settings), max_batch=64)
    writer.start()
    try:
        now = datetime.now(UTC)
        unit = f"car-{uuid.uuid4().hex[:8]}"

        def row(n: int, camera: str) -> dict[str, Any]:
            return {
                "id": uuid.uuid4(), "captured_at": now - timedelta(seconds=n), "received_at": now, "agency": AGENCY,
                "unit": unit, "shift_id": None, "camera": camera, "client_read_id": f"poison-{unit}-{n}",
                "lat": 45.0, "lon": -93.0, "heading": None, "speed": None, "plate": f"WR{n:04d}",
                "confusion_key": None, "plate_confidence": None, "state": None, "plate_source": "car",
                "car_plate": None, "image_key": None, "crop_key": None, "recognition_pending": False,
                "match_pending": False, "attempts": 0, "last_error": None, "list_version": None, "hits": [],
            }  # fmt: skip

        rows_in = [row(n, "c\x00m" if n == 4 else "front") for n in range(9)]
        await writer.ensure_days({now.date(), (now - timedelta(seconds=10)).date()})
        results = await asyncio.gather(
            *(writer.submit(r, require_active=False) for r in rows_in), return_exceptions=True
        )
        assert isinstance(results[4], Unprocessable)  # refused: a retry would fail the same way
        assert all(not isinstance(r, BaseException) and r.inserted for i, r in enumerate(results) if i != 4)
        again = await asyncio.gather(writer.submit(rows_in[4], require_active=False), return_exceptions=True)
        assert isinstance(again[0], Unprocessable)
    finally:
        await writer.stop()
        await writer.engine.dispose()
    stored = await rows(settings, "SELECT count(*) AS n FROM ingest.reads WHERE unit = :u", u=unit)
    assert stored[0].n == 8


class _Counting:
    """A chunked body (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, chunks: int, size: int = 1024 * 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"[" + b" " * (self.size - 1)


async def test_bodies_are_bounded_while_they_stream(live_app: Any, make_token: TokenFactory) -> None:
    app, client, own = live_app
    flood = _Counting(300)  # 300 MB, chunked
    wrong = await client.post("/v1/agents/openalpr/alpra_" + "x" * 43, content=flood)
    assert wrong.status_code == 401, wrong.text
    assert flood.pulled <= 1  # refused on the token, before the body

    admin = make_token(subject="poison-admin", roles=["admin"], agency=AGENCY)
    agent = await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}")
    big = _Counting(300)
    over = await client.post(f"/v1/agents/openalpr/{agent['token']}", content=big)
    assert over.status_code == 413, over.text
    assert big.pulled <= own.ingest_agent_max_body_bytes // big.size + 2  # stopped at the limit, not buffered

    officer_token = make_token(subject="poison-officer", roles=["officer"], agency=AGENCY, badge="P1")
    car = _Counting(300)
    read = await client.post(
        "/v1/reads",
        content=car,
        headers={"Authorization": f"Bearer {officer_token}", "Content-Type": "application/json"},
    )
    assert read.status_code == 413, read.text
    assert car.pulled <= 8


async def test_text_numbers_and_dates_out_of_bounds_are_422(
    live_app: Any, make_token: TokenFactory, officer_factory: Any
) -> None:
    app, client, own = live_app
    officer = officer_factory(client)()
    nul_camera = await officer.start(cameras=["front", "re\x00ar"])
    assert nul_camera.status_code == 422, nul_camera.text
    assert (await officer.start()).status_code == 201
    bad = await officer.post_read(officer.meta(camera="c\x00m"))
    assert bad.status_code == 422 and "control characters" in bad.text
    good = await officer.post_read(officer.meta(plate="ABC123"))
    assert good.status_code in (200, 202), good.text

    events = f"/v1/units/{officer.unit}/events"
    assert (await client.get(events, params={"since": 2**63}, headers=officer.headers)).status_code == 422
    stream = await client.get(
        f"/v1/units/{officer.unit}/stream", headers={**officer.headers, "Last-Event-ID": str(2**63)}
    )
    assert stream.status_code == 422, stream.text  # refused, not a 200 that drops (and a reconnect loop)
    assert (await client.get(f"{events}?camera=a%00b", headers=officer.headers)).status_code == 422

    admin = make_token(subject="poison-admin", roles=["admin"], agency=AGENCY)
    auth = {"Authorization": f"Bearer {admin}"}
    agent = await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}")
    move = {"lat": 45.1, "lon": -93.1, "placed_on": "2062-01-01"}
    ahead = await client.post(f"/v1/agents/{agent['agent_id']}/location", json=move, headers=auth)
    assert ahead.status_code == 422, ahead.text
    move["placed_on"] = date.today().isoformat()
    assert (await client.post(f"/v1/agents/{agent['agent_id']}/location", json=move, headers=auth)).status_code == 200

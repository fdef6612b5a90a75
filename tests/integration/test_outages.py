"""Stop recognition and hotlist mid-run (real uvicorn processes): the car's reads are answered 202 with their work
pending; when the services return, ingest's worker finishes every read and the late hits reach the unit's stream,
once each. Nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from services.ingest.main import Transports, create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.hotlist.bca import CREDENTIAL, FakeBca, extract, row
from tests.ingest.conftest import AGENCY, Officer, StaticTokens, ingest_settings
from tests.ingest.test_reads import _rows
from tests.integration.conftest import eventually
from tests.recognition.render import jpeg, plate_image
from tests.support.apps import running
from tests.support.s3 import free_port_pairs


class Served:
    """One service under uvicorn on a fixed port, so it can be stopped and started again at the same URL."""

    def __init__(self, service: str, env: dict[str, str], port: int) -> None:
        self.service, self.env, self.port = service, env, port
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", f"services.{self.service}.main:create_app"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.proc = subprocess.Popen(cmd, env=self.env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{self.url}/healthz", timeout=1)
                if health.status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.service} exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.service} did not start in {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def service_env(settings: Settings, bca: FakeBca) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPR_")}
    env.update(
        ALPR_ENVIRONMENT="test",
        ALPR_DATA_DIR=str(settings.data_dir),
        ALPR_DATABASE_URL=settings.database_url or "",
        ALPR_JWT_KEYS_DIR=str(settings.jwt_keys_dir),
        ALPR_S3_ENDPOINT=settings.s3_endpoint or "",
        ALPR_S3_ACCESS_KEY=settings.s3_access_key or "",
        ALPR_S3_SECRET_KEY=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        ALPR_S3_BUCKET=settings.s3_bucket,
        ALPR_LOG_LEVEL="WARNING",
        ALPR_HOTLIST_SOURCE_URL=bca.url,
        ALPR_HOTLIST_SOURCE_CREDENTIAL=CREDENTIAL,
        ALPR_HOTLIST_SYNC_SCHEDULED="false",
        ALPR_HOTLIST_MAX_DROP_SHARE="1",  # lists of every size in the session's one database
        ALPR_HOTLIST_POLL_S="0.2",
        ALPR_RECOGNITION_WORKERS="1",
    )
    return env


@pytest.fixture(scope="module")
def peers(settings: Settings, bca_server: FakeBca) -> Iterator[tuple[Served, Served]]:
    env = service_env(settings, bca_server)
    ports = free_port_pairs(2)
    recognition, hotlist = Served("recognition", env, ports[0]), Served("hotlist", env, ports[1])
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once: the OCR models take seconds to load
            list(pool.map(Served.start, (recognition, hotlist)))
        yield recognition, hotlist
    finally:
        recognition.stop()
        hotlist.stop()


@pytest.fixture
async def ingest(
    settings: Settings, make_token: TokenFactory, peers: tuple[Served, Served]
) -> AsyncIterator[httpx.AsyncClient]:
    recognition, hotlist = peers
    own = ingest_settings(
        settings,
        recognition_url=recognition.url,
        hotlist_url=hotlist.url,
        ingest_call_recognition=True,
        ingest_call_hotlist=True,
        ingest_recognition_timeout_s=10.0,
        ingest_hotlist_timeout_s=5.0,
        ingest_worker_interval_s=0.2,
    )
    tokens = StaticTokens(make_token(subject="svc-ingest", roles=["service"]))
    async with running(create_app(own, transports=Transports(tokens=tokens))) as client:
        yield client


def _officer(client: httpx.AsyncClient, make_token: TokenFactory) -> Officer:
    badge = str(uuid.uuid4().int % 1_000_000)
    token = make_token(
        subject=f"officer-{badge}", roles=["officer"], badge=badge, agency=AGENCY, trained_until=int(time.time() + 3600)
    )
    return Officer(client, token, badge, unit=f"car-{uuid.uuid4().hex[:8]}")


async def test_reads_survive_recognition_and_hotlist_going_down_and_finish_when_they_return(
    ingest: httpx.AsyncClient, peers: tuple[Served, Served], bca_server: FakeBca, make_token: TokenFactory, settings
) -> None:  # type: ignore[no-untyped-def]
    recognition, hotlist = peers
    admin = {"Authorization": f"Bearer {make_token(roles=['admin'])}"}
    bca_server.publish(extract([row("V800000001", "KXR482"), row("W800000002", "OUT123")]))
    async with httpx.AsyncClient(timeout=30) as raw:
        synced = await raw.post(f"{hotlist.url}/v1/hotlist/sync", headers=admin)
    assert synced.status_code == 200, synced.text
    officer = _officer(ingest, make_token)
    assert (await officer.start()).status_code == 201

    up = await officer.post_read(officer.meta(), photo=jpeg(plate_image("KXR482")))
    assert up.status_code == 200 and [h["entry_id"] for h in up.json()["hits"]] == ["V800000001"]

    # Mid-run: both go down. Reads are stored and answered 202 with what is pending.
    await asyncio.gather(asyncio.to_thread(recognition.stop), asyncio.to_thread(hotlist.stop))
    sent: list[tuple[dict[str, Any], bytes | None]] = [
        (officer.meta(), jpeg(plate_image("KXR482", seed=11))),  # hot: recognition and match pending
        (officer.meta(plate="OUT123", state="MN"), None),  # hot: match pending
        (officer.meta(), jpeg(plate_image("PZM337", seed=12))),  # not hot
        (officer.meta(plate="CLR999"), None),  # not hot
    ]
    answers = []
    for meta, photo in sent:
        resp = await officer.post_read(meta, photo=photo)
        assert resp.status_code == 202, resp.text
        answers.append(resp.json())
    assert [a["pending"] for a in answers] == [["recognition", "match"], ["match"], ["recognition", "match"], ["match"]]
    assert all(a["hits"] == [] and a["status"] == "pending" for a in answers)
    # A retry during the outage is the same read, not a second one.
    retry = await officer.post_read(sent[1][0])
    assert retry.status_code == 202 and retry.json()["duplicate"] is True

    ids = [a["read_id"] for a in answers]

    async def late_hits(count: int) -> list[dict[str, Any]]:
        resp = await ingest.get(f"/v1/units/{officer.unit}/events", params={"since": 0}, headers=officer.headers)
        hits = [e for e in resp.json()["events"] if e["kind"] == "hit" and e["payload"]["read"]["read_id"] in ids]
        return hits if len(hits) >= count else []

    # Hotlist back first: with recognition still down, the read the car had read is matched, its hit delivered.
    await asyncio.to_thread(hotlist.start)
    (early,) = await eventually(lambda: late_hits(1), timeout_s=30)
    assert (early["payload"]["read"]["read_id"], early["payload"]["entry_id"]) == (ids[1], "W800000002")
    assert early["payload"]["owner_warning"] and early["payload"]["notice"]

    # Recognition back: the worker finishes every read; the other late hit reaches the unit's stream.
    await asyncio.to_thread(recognition.start)

    async def finished() -> list[Any]:
        rows = await _rows(
            settings,
            "SELECT id, plate, plate_source, agreement, recognition_pending, match_pending, hits FROM ingest.reads "
            "WHERE id = ANY(CAST(:ids AS uuid[])) AND NOT (recognition_pending OR match_pending)",
            ids=ids,
        )
        return rows if len(rows) == len(ids) else []

    rows = {str(r.id): r for r in await eventually(finished, timeout_s=60)}
    assert [rows[i].plate for i in ids] == ["KXR482", "OUT123", "PZM337", "CLR999"]
    assert [rows[i].plate_source for i in ids] == ["recognition", "car", "recognition", "car"]
    # The worker's recognition stores the two readers' agreement too (none for the car's own readings).
    assert [rows[i].agreement for i in ids] == ["both", None, "both", None]

    hits = await eventually(lambda: late_hits(2), timeout_s=30)
    assert [(e["payload"]["read"]["read_id"], e["payload"]["entry_id"]) for e in hits] == [
        (ids[1], "W800000002"),
        (ids[0], "V800000001"),
    ]
    assert [e["payload"].get("agreement") for e in hits] == [None, "both"]

    # Nothing doubled: one row per read, one stored hit per (read, entry), one stream event per hit.
    counted = await _rows(
        settings,
        "SELECT (SELECT count(*) FROM ingest.reads WHERE unit = :u) AS reads, "
        "(SELECT count(*) FROM hotlist.hits WHERE read_id = ANY(:ids)) AS hits, "
        "(SELECT count(*) FROM ingest.stream_events WHERE unit = :u AND kind = 'hit') AS events",
        u=officer.unit,
        ids=ids,
    )
    assert tuple(counted[0]) == (5, 2, 3)  # the two late hits, and the first read's hit, found at read time
    # The car asking again after the outage gets the finished result.
    final = await officer.post_read(sent[1][0])
    assert final.status_code == 200 and final.json()["duplicate"] is True
    assert [h["entry_id"] for h in final.json()["hits"]] == ["W800000002"]

"""Stateless replicas: two instances of each service and of the agents' importer on one database and one object
store, each service behind one address (a round-robin proxy, as a Kubernetes Service). What must hold across them.

One replica set serves the whole module (ten processes on a 2-core machine: started once)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_ROLE_PASSWORDS
from tests.hotlist.bca import CREDENTIAL, FakeBca, extract, row
from tests.ingest.agents_support import now_ms, results_body
from tests.support.pg import _connect_kwargs, create_test_database, drop_database
from tests.support.replicas import AGENCY, PASSWORD, Replicas, start_replicas
from tests.support.s3 import WeedS3


@pytest.fixture(scope="module")
def bca() -> Iterator[FakeBca]:
    server = FakeBca()
    server.start()
    server.publish(extract([row("V700003100", "FIRST31")]))  # the list the scheduled sync loads at start
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(
    pg_maintenance_url: str, s3_server: WeedS3, bca: FakeBca, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    url = create_test_database(pg_maintenance_url)  # its own database: the scheduled work runs on it alone
    data_dir = tmp_path_factory.mktemp("replicas")
    try:
        running = start_replicas(
            data_dir, url, TEST_ROLE_PASSWORDS, s3_server,
            ALPR_HOTLIST_SOURCE_URL=bca.url, ALPR_HOTLIST_SOURCE_CREDENTIAL=CREDENTIAL,
            ALPR_HOTLIST_SYNC_INTERVAL_S="3600", ALPR_HOTLIST_POLL_S="0.2", ALPR_INGEST_HOTLIST_POLL_S="0.2",
            ALPR_INGEST_RECOGNITION_TIMEOUT_S="30", ALPR_INGEST_HOTLIST_TIMEOUT_S="10",
        )  # fmt: skip
        yield running
        running.stop()
    finally:
        drop_database(pg_maintenance_url, url)


def _login(replicas: Replicas, username: str, base: str | None = None, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{base or replicas.url('access')}/v1/token",
        data={"grant_type": "password", "username": username, "password": password},
        timeout=30,
    )


def _token(replicas: Replicas, username: str) -> str:
    resp = _login(replicas, username)
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def _admin(replicas: Replicas) -> str:
    """A token of the module's one administrator (made once: each person costs two CLI runs)."""
    if "admin" not in _ADMIN:
        _ADMIN["admin"] = replicas.add_person(str(uuid.uuid4().int % 10**6), role="admin")
    return _token(replicas, _ADMIN["admin"])


_ADMIN: dict[str, str] = {}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(**_connect_kwargs(database_url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def _meta(unit: str, **fields: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {"client_read_id": uuid.uuid4().hex[:16], "unit": unit, "camera": "front",
            "captured_at": datetime.now(UTC).isoformat(), "lat": 45.03, "lon": -93.36, **fields}  # fmt: skip


def _post_read(base: str, token: str, meta: dict[str, Any]) -> httpx.Response:
    import json

    return httpx.post(f"{base}/v1/reads", files={"metadata": (None, json.dumps(meta), "application/json")},
                      headers=_auth(token), timeout=30)  # fmt: skip


def _officer_on_shift(replicas: Replicas) -> tuple[str, str, str]:
    """(user name, token, unit) of a new officer whose shift is open."""
    badge = str(uuid.uuid4().int % 10**6)
    username = replicas.add_person(badge)
    token = _token(replicas, username)
    unit = f"car-{badge}"
    shift = httpx.post(f"{replicas.url('ingest')}/v1/shifts", json={"badge": badge, "unit": unit, "cameras": ["front"]},
                       headers=_auth(token), timeout=30)  # fmt: skip
    assert shift.status_code == 201, shift.text
    return username, token, unit


def test_the_proxy_spreads_connections_over_both_instances(replicas: Replicas) -> None:
    for service in ("access", "ingest", "recognition", "hotlist"):
        before = dict(replicas.proxies[service].connections)
        for _ in range(4):
            assert httpx.get(f"{replicas.url(service)}/healthz", timeout=10).status_code == 200
        after = replicas.proxies[service].connections
        # Round robin over every connection, the services' own calls through the proxy included: of the 4 made
        # here each instance takes at least 2, whatever came between them.
        assert all(after[p] - before.get(p, 0) >= 2 for p in replicas.ports[service]), (service, before, after)


def test_a_car_posting_through_either_instance_stores_each_read_once(replicas: Replicas) -> None:
    _, token, unit = _officer_on_shift(replicas)
    metas = [_meta(unit, plate=f"IDM{i:03d}", state="MN") for i in range(10)]
    first = [_post_read(replicas.direct("ingest", i % 2), token, m) for i, m in enumerate(metas)]
    assert all(r.status_code == 200 and not r.json()["duplicate"] for r in first), [r.text for r in first]
    # The car retries every read through the other instance, and some through both at once.
    again = [_post_read(replicas.direct("ingest", (i + 1) % 2), token, m) for i, m in enumerate(metas)]
    assert all(r.status_code == 200 and r.json()["duplicate"] for r in again), [r.text for r in again]
    assert [r.json()["read_id"] for r in again] == [r.json()["read_id"] for r in first]

    async def both_at_once(meta: dict[str, Any]) -> list[httpx.Response]:
        return list(await asyncio.gather(*(asyncio.to_thread(_post_read, replicas.direct("ingest", i), token, meta)
                                           for i in range(2))))  # fmt: skip

    racing = [_meta(unit, plate=f"IDR{i:03d}", state="MN") for i in range(5)]
    for meta in racing:
        answers = asyncio.run(both_at_once(meta))
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        assert sorted(r.json()["duplicate"] for r in answers) == [False, True]
        assert len({r.json()["read_id"] for r in answers}) == 1
    ids = [m["client_read_id"] for m in metas + racing]
    stored = asyncio.run(_fetch(replicas.admin_url, "SELECT client_read_id, count(*) AS n FROM ingest.reads "
                                "WHERE client_read_id = ANY($1::text[]) GROUP BY 1", ids))  # fmt: skip
    assert {r["client_read_id"]: r["n"] for r in stored} == dict.fromkeys(ids, 1)


def test_a_revocation_on_one_instance_is_honoured_by_every_instance_within_2_s(replicas: Replicas) -> None:
    """Logout, disable, and a client's key rotation, each done through one access instance; the token is refused
    by both instances of ingest and hotlist within 2 s (every process re-reads the revocations, shared/revocations)."""

    def refused_everywhere(token: str, started: float) -> float:
        paths = {"ingest": "/v1/shifts?limit=1", "hotlist": "/v1/hotlist/version"}
        targets = [f"{replicas.direct(s, i)}{path}" for s, path in paths.items() for i in range(2)]
        pending = set(targets)
        while pending and time.monotonic() - started < 10:
            for url in list(pending):
                if httpx.get(url, headers=_auth(token), timeout=10).status_code == 401:
                    pending.discard(url)
            time.sleep(0.05)
        assert not pending, pending
        return time.monotonic() - started

    # Logout through access instance 0.
    _, token, _ = _officer_on_shift(replicas)
    for i in range(2):
        assert httpx.get(f"{replicas.direct('hotlist', i)}/v1/hotlist/version", headers=_auth(token)).status_code in (
            200,
            503,
        )
    started = time.monotonic()
    assert httpx.post(f"{replicas.direct('access', 0)}/v1/logout", headers=_auth(token)).status_code == 200
    logout_s = refused_everywhere(token, started)

    # An administrator disables an officer through access instance 1.
    admin = _admin(replicas)
    username, token, _ = _officer_on_shift(replicas)
    users = httpx.get(f"{replicas.url('access')}/v1/users", headers=_auth(admin), timeout=30).json()
    user_id = next(u["id"] for u in users if u["username"] == username)
    started = time.monotonic()
    resp = httpx.post(f"{replicas.direct('access', 1)}/v1/users/{user_id}/disable", headers=_auth(admin), timeout=30)
    assert resp.status_code == 200, resp.text
    disable_s = refused_everywhere(token, started)

    # An outside agency's client of the administrator's agency, its secret rotated through access instance 0: its
    # tokens die everywhere. (The service identity is not administered through the API: docs/security.md.)
    out = replicas.alpr(
        "access", "add-client", "--name", f"ext-{uuid.uuid4().hex[:6]}", "--role", "agency",
        "--agency-name", "Replica County Sheriff", "--ori", AGENCY,
    )  # fmt: skip
    client_id, secret = (line.split()[1] for line in out.splitlines()[:2])
    grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    resp = httpx.post(f"{replicas.url('access')}/v1/token", data=grant, timeout=30)
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    started = time.monotonic()
    resp = httpx.post(f"{replicas.direct('access', 0)}/v1/clients/{client_id}/rotate-secret", headers=_auth(admin))
    assert resp.status_code == 200, resp.text
    rotate_s = refused_everywhere(token, started)
    assert max(logout_s, disable_s, rotate_s) < 2.0, (logout_s, disable_s, rotate_s)


def test_the_login_throttle_holds_across_access_instances(replicas: Replicas) -> None:
    """Five failures for one account from one source, spread over both instances, throttle that source on both."""
    username = replicas.add_person(str(uuid.uuid4().int % 10**6))
    for i in range(5):
        resp = _login(replicas, username, replicas.direct("access", i % 2), password="not the password at all")
        assert resp.status_code == 401, resp.text
    for i in range(2):
        resp = _login(replicas, username, replicas.direct("access", i))
        assert resp.status_code == 429, resp.text  # even the right password waits
        assert int(resp.headers["Retry-After"]) > 0


def test_a_hit_raised_through_one_instance_reaches_the_stream_served_by_the_other_within_1_s(
    replicas: Replicas, bca: FakeBca
) -> None:
    admin = _admin(replicas)
    bca.publish(extract([row("V700003101", "FIRST31"), row("V700003102", "HIT3101")]))
    resp = httpx.post(f"{replicas.url('hotlist')}/v1/hotlist/sync", headers=_auth(admin), timeout=60)
    assert resp.status_code == 200, resp.text
    version = resp.json()["version"]
    _, token, unit = _officer_on_shift(replicas)

    def in_force_everywhere() -> bool:
        return all(
            httpx.get(f"{replicas.direct('hotlist', i)}/v1/hotlist/version", headers=_auth(token)).json().get("version")
            == version
            for i in range(2)
        )

    deadline = time.monotonic() + 20
    while not in_force_everywhere():
        assert time.monotonic() < deadline, "the new list is not in force on both hotlist instances"
        time.sleep(0.1)
    time.sleep(1.0)  # the list's own notice is on the stream before it opens (new events only from then)
    seen: dict[str, float] = {}

    def listen() -> None:
        url = f"{replicas.direct('ingest', 1)}/v1/units/{unit}/stream"
        with httpx.stream("GET", url, params={"max_events": 5}, headers=_auth(token), timeout=30) as stream:
            for line in stream.iter_lines():
                if line == "event: hit":
                    seen["hit"] = time.monotonic()
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)  # the stream is open before the read is posted
    resp = _post_read(replicas.direct("ingest", 0), token, _meta(unit, plate="HIT3101", state="MN"))
    answered = time.monotonic()
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["hits"]) == 1, resp.text
    listener.join(10)
    assert "hit" in seen, "the hit never reached the stream served by the other instance"
    assert seen["hit"] - answered < 1.0, seen["hit"] - answered


def _agent_reads(replicas: Replicas, plates: list[str]) -> dict[str, int]:
    rows = asyncio.run(_fetch(replicas.admin_url, "SELECT r.plate, count(*) AS n FROM ingest.reads r JOIN "
                              "ingest.agent_reads a ON a.read_id = r.id WHERE r.plate = ANY($1::text[]) GROUP BY 1",
                              plates))  # fmt: skip
    return {r["plate"]: r["n"] for r in rows}


def test_the_agents_spool_survives_the_loss_of_the_instance_that_accepted_the_posts(replicas: Replicas) -> None:
    """ingest answers an agent only once the post is fsynced into the shared spool: the importers (stopped here
    meanwhile) import it after the accepting instance is SIGKILLed, each read once though two importers run."""
    agent = replicas.add_agent(f"pole-{uuid.uuid4().hex[:6]}")
    plates = [f"SPL{i:03d}" for i in range(12)]
    replicas.signal_all("ingest-agents", signal.SIGSTOP)
    try:
        for i, plate in enumerate(plates):
            resp = httpx.post(f"{replicas.direct('ingest', 0)}/v1/agents/openalpr/{agent}",
                              content=results_body(plate, now_ms() + i), timeout=30,
                              headers={"Content-Type": "application/json"})  # fmt: skip
            assert resp.status_code == 200, resp.text
        replicas.kill("ingest", 0)
    finally:
        replicas.signal_all("ingest-agents", signal.SIGCONT)
    try:
        deadline = time.monotonic() + 60
        while len(_agent_reads(replicas, plates)) < len(plates) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _agent_reads(replicas, plates) == dict.fromkeys(plates, 1)
    finally:
        replicas.spawn("ingest", 0)
        replicas.wait_ready("ingest", 0)


def test_scheduled_background_work_runs_once_across_the_replicas(replicas: Replicas) -> None:
    """Two hotlist instances loaded the list at start with one sync; the purge of four ingest processes (two
    instances, two importers) ran once at a time; a sync asked of both instances at once runs on one."""
    runs = asyncio.run(_fetch(replicas.admin_url, "SELECT trigger, outcome FROM hotlist.sync_runs"))
    scheduled = [r["outcome"] for r in runs if r["trigger"] == "schedule"]
    assert scheduled.count("loaded") == 1, runs
    purges = asyncio.run(_fetch(replicas.admin_url, "SELECT started_at, finished_at FROM ingest.purge_runs "
                                "WHERE finished_at IS NOT NULL ORDER BY started_at"))  # fmt: skip
    assert purges, "no scheduled purge ran"
    for before, after in zip(purges, purges[1:], strict=False):
        assert after["started_at"] >= before["finished_at"], purges  # never two at once
    admin = _admin(replicas)

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(await asyncio.gather(*(client.post(f"{replicas.direct('hotlist', i)}/v1/hotlist/sync",
                                                           headers=_auth(admin)) for i in range(2))))  # fmt: skip

    before = len(asyncio.run(_fetch(replicas.admin_url, "SELECT 1 FROM hotlist.sync_runs")))
    answers = asyncio.run(both())
    after = asyncio.run(_fetch(replicas.admin_url, "SELECT trigger, outcome FROM hotlist.sync_runs"))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]  # one ran, one was told
    assert len(after) == before + 1, after[before:]


def test_600_reads_with_photos_while_one_instance_of_each_service_is_killed_in_turn(
    replicas: Replicas, record_property: pytest.RecordProperty
) -> None:
    """The fault drill with replicas: a car posts 600 reads with photos (4 in flight) through ingest's one address
    while one instance of ingest, hotlist, recognition, access and the importer is SIGKILLed in turn and restarted
    (as the kubelet does). All 600 are stored, none twice; the car sees nothing worse than a retry."""
    from tests.recognition.render import jpeg, plate_image

    _, token, unit = _officer_on_shift(replicas)
    photo = jpeg(plate_image("DRL600"))
    metas = [_meta(unit, plate=f"DRL{i:03d}", state="MN") for i in range(600)]
    kills = {80: "ingest", 190: "hotlist", 300: "recognition", 410: "access", 520: "ingest-agents"}
    latencies: list[float] = []
    retries: list[int] = []
    statuses: list[int] = []

    async def drill() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for meta in metas:
            queue.put_nowait(meta)
        done = 0

        async def car(client: httpx.AsyncClient) -> None:
            nonlocal done
            while not queue.empty():
                meta = queue.get_nowait()
                files = {"metadata": (None, __import__("json").dumps(meta), "application/json"),
                         "photo": ("p.jpg", photo, "image/jpeg")}  # fmt: skip
                started, tries = time.monotonic(), 0
                while True:
                    try:
                        resp = await client.post("/v1/reads", files=files, headers=_auth(token))
                        if resp.status_code not in (502, 503, 504):
                            break
                    except httpx.TransportError:
                        pass
                    tries += 1
                    assert tries < 50, f"read {meta['client_read_id']} never accepted"
                    await asyncio.sleep(0.2)
                latencies.append(time.monotonic() - started)
                retries.append(tries)
                statuses.append(resp.status_code)
                done += 1
                if done in kills:  # kill one instance, the kubelet restarts it at once
                    service = kills[done]
                    await asyncio.to_thread(replicas.kill, service, 0)
                    await asyncio.to_thread(replicas.spawn, service, 0)

        async with httpx.AsyncClient(base_url=replicas.url("ingest"), timeout=30) as client:
            await asyncio.gather(*(car(client) for _ in range(4)))

    asyncio.run(drill())
    try:
        assert set(statuses) <= {200, 202}, sorted(set(statuses))  # 202: stored, a peer's step left pending
        ids = [m["client_read_id"] for m in metas]
        stored = asyncio.run(_fetch(replicas.admin_url, "SELECT client_read_id, count(*) AS n, "
                                    "bool_and(image_key IS NOT NULL) AS photo FROM ingest.reads "
                                    "WHERE client_read_id = ANY($1::text[]) GROUP BY 1", ids))  # fmt: skip
        assert len(stored) == 600 and all(r["n"] == 1 and r["photo"] for r in stored), len(stored)
    finally:
        for service in kills.values():
            if service != "ingest-agents":
                replicas.wait_ready(service, 0)
    ordered = sorted(latencies)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99) - 1]
    record_property("drill_p50_ms", round(p50 * 1000))
    record_property("drill_p99_ms", round(p99 * 1000))
    record_property("drill_retried_reads", sum(1 for r in retries if r))
    print(  # noqa: T201 - the drill's figure, reported with -s (docs/scaling.md)
        f"fault drill: 600 stored; car's post p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms; {sum(1 for r in retries if r)} reads retried, {sum(retries)} retries"
    )


def _photos_read(replicas: Replicas) -> float:
    """Photos read by OCR, summed over both recognition instances (their /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for i in range(2):
        text = httpx.get(f"{replicas.direct('recognition', i)}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name == "alpr_recognition_seconds":
                total += sum(s.value for s in family.samples if s.name == "alpr_recognition_seconds_count")
    return total


def test_pending_recognition_is_finished_once_by_the_four_ingest_processes(replicas: Replicas) -> None:
    """Photos posted while recognition is down wait as pending reads; once it is back, the workers of both ingest
    instances and both importers (four processes, each retrying pending work) read each photo exactly once."""
    from tests.recognition.render import jpeg, plate_image

    _, token, unit = _officer_on_shift(replicas)
    for i in range(2):
        replicas.kill("recognition", i)
    try:
        metas = [_meta(unit) for _ in range(6)]
        for n, meta in enumerate(metas):
            files = {"metadata": (None, __import__("json").dumps(meta), "application/json"),
                     "photo": ("p.jpg", jpeg(plate_image(f"PND{n:03d}")), "image/jpeg")}  # fmt: skip
            resp = httpx.post(f"{replicas.url('ingest')}/v1/reads", files=files, headers=_auth(token), timeout=60)
            assert resp.status_code == 202 and "recognition" in resp.json()["pending"], resp.text
    finally:
        for i in range(2):
            replicas.spawn("recognition", i)
        for i in range(2):
            replicas.wait_ready("recognition", i)
    ids = [m["client_read_id"] for m in metas]

    def still_pending() -> int:
        rows = asyncio.run(_fetch(replicas.admin_url, "SELECT count(*) AS n FROM ingest.reads WHERE "
                                  "client_read_id = ANY($1::text[]) AND recognition_pending", ids))  # fmt: skip
        return int(rows[0]["n"])

    deadline = time.monotonic() + 90
    while still_pending() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert still_pending() == 0
    time.sleep(3)  # a worker that would read a photo twice has had another round
    assert _photos_read(replicas) == len(metas)

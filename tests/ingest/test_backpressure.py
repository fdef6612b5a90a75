"""Ingest under load (issue 18): it stops sending photos while recognition's queue is full, and an agent backlog
waiting to be matched shows on /readyz and as a metric."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from prometheus_client import REGISTRY

from services.ingest.main import create_app
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.ingest.agents_support import AGENCY, now_ms, post, register, results_body
from tests.ingest.conftest import ingest_settings
from tests.ingest.test_reads import image_bytes
from tests.support.apps import running


async def _http_server(answer: bytes | None) -> tuple[asyncio.Server, list[bytes]]:
    """A real HTTP/1.1 server on a free port: it answers `answer` to every request (None: never answers)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                seen.append(head.split(b"\r\n", 1)[0])
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), seen


async def test_no_photo_is_sent_while_recognition_says_its_queue_is_full(settings: Settings, officer_factory) -> None:  # type: ignore[no-untyped-def]
    body = b'{"detail":"recognition queue full, retry shortly"}'
    answer = (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    server, seen = await _http_server(answer)
    port = server.sockets[0].getsockname()[1]
    own = ingest_settings(settings, ingest_call_recognition=True, recognition_url=f"http://127.0.0.1:{port}")
    app = create_app(own, run_worker=False)
    try:
        async with running(app) as client:
            officer = officer_factory(client)()
            assert (await officer.start()).status_code == 201
            answers = [await officer.post_read(officer.meta(), image_bytes(noise=n)) for n in range(3)]
            assert [a.status_code for a in answers] == [202, 202, 202]  # stored, recognition pending
            assert all(a.json()["pending"] == ["recognition"] for a in answers)
            assert len(seen) == 1  # the queue was full: the next two photos were not sent

            await app.state.ingest_worker.run_once()  # within Retry-After: the worker does not send either
            assert len(seen) == 1
            await asyncio.sleep(1.1)
            await app.state.ingest_worker.run_once()  # after it: photos go again, several at once
            assert 1 < len(seen) <= 1 + own.ingest_worker_recognition_concurrency
    finally:
        server.close()


async def test_agent_reads_waiting_to_be_matched_are_a_readyz_warning_and_a_metric(
    settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    server, seen = await _http_server(None)  # a hotlist that takes the call and never answers
    port = server.sockets[0].getsockname()[1]
    own = ingest_settings(
        settings,
        data_dir=tmp_path,
        ingest_call_hotlist=True,
        hotlist_url=f"http://127.0.0.1:{port}",
        ingest_hotlist_timeout_s=3.0,
        ingest_agent_backlog_ready_max=2,
    )
    app = create_app(own, run_worker=False)
    try:
        async with running(app) as client:
            admin = make_token(subject="agents-admin", roles=["admin"], agency=AGENCY)
            token = (await register(client, admin, name=f"pole-{uuid.uuid4().hex[:6]}"))["token"]
            at = now_ms() - 10_000
            for i in range(3):
                plate = f"BKL{i}00"
                assert (await post(client, token, results_body(plate, at + i, uuid=f"bk-{i}-{at}"))).status_code == 200
            ready = (await client.get("/readyz")).json()
            assert "agent_backlog" not in ready.get("warnings", {})

            # The match at import times out first (the reads are then stored unmatched), then the importer is stuck
            # matching them, on hotlist.
            importing = asyncio.create_task(app.state.agents.importer.run_once())
            for _ in range(200):
                ready = (await client.get("/readyz")).json()
                if "agent_backlog" in ready.get("warnings", {}):
                    break
                await asyncio.sleep(0.05)
            assert ready["warnings"]["agent_backlog"] == "more than 2 camera-agent reads wait to be matched"
            assert REGISTRY.get_sample_value("alpr_ingest_agent_unmatched_reads") == 3

            assert await importing == 3  # hotlist timed out: match pending, handed to the worker's retry
            ready = (await client.get("/readyz")).json()
            assert "agent_backlog" not in ready.get("warnings", {})
            assert REGISTRY.get_sample_value("alpr_ingest_agent_unmatched_reads") == 0
    finally:
        server.close()

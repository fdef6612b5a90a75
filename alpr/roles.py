"""Least-privilege PostgreSQL roles: an owner the migrations run as, and one login role per service.

Role names carry the database's name (`<db>_owner`, `<db>_ingest`, ...): roles are cluster-wide, so two databases
on one server (tests, staging beside production) never share a role. Each service role may use its own schema's
tables, INSERT and SELECT on the audit log, and the few things below that a flow needs; it owns nothing, so it
cannot ALTER, disable triggers on, TRUNCATE or DROP anything, and is never a superuser. Making the roles is
idempotent and tolerates another process doing the same at the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from sqlalchemy.engine import make_url

from alpr.migrate import upgrade
from shared.settings import SERVICES

ROLE_PASSWORDS_FILE = "db-roles.json"
OUR_SCHEMAS = ("access", "ingest", "recognition", "hotlist", "audit")

# What a service needs beyond its own schema, and nothing more.
EXTRA_GRANTS: dict[str, tuple[str, ...]] = {
    # The sealer (a job in access) writes the audit chain's keyed seals.
    "access": ("GRANT SELECT, INSERT ON audit.seals TO {role}",),
    "ingest": (
        # Revocations access publishes: every service refuses the tokens named there.
        "GRANT USAGE ON SCHEMA access TO {role}",
        "GRANT SELECT ON access.revocations TO {role}",
        # Day partitions of the reads, made on first use and dropped by the retention purge, through the owner.
        "GRANT EXECUTE ON FUNCTION ingest.create_reads_partition(date) TO {role}",
        "GRANT EXECUTE ON FUNCTION ingest.drop_reads_partition(date) TO {role}",
    ),
    "recognition": (
        "GRANT USAGE ON SCHEMA access TO {role}",
        "GRANT SELECT ON access.revocations TO {role}",
    ),
    "hotlist": (
        "GRANT USAGE ON SCHEMA access TO {role}",
        "GRANT SELECT ON access.revocations TO {role}",
        # A BCA list version's partition: made, indexed after the COPY, dropped when older than the versions kept.
        "GRANT EXECUTE ON FUNCTION hotlist.create_entries_partition(bigint) TO {role}",
        "GRANT EXECUTE ON FUNCTION hotlist.index_entries_partition(bigint) TO {role}",
        "GRANT EXECUTE ON FUNCTION hotlist.drop_entries_partition(bigint) TO {role}",
    ),
}


def database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError("the database URL names no database")
    return name


def role_names(database: str) -> dict[str, str]:
    """`owner` and each service's role for `database`."""
    return {"owner": f"{database}_owner", **{service: f"{database}_{service}" for service in SERVICES}}


def service_database_url(admin_url: str, service: str, password: str | None) -> str:
    """`admin_url` with the service's role and password: what that service connects with."""
    url = make_url(admin_url).set(username=role_names(database_name(admin_url))[service], password=password)
    return url.render_as_string(hide_password=False)


def role_passwords(data_dir: Path, given: dict[str, str] | None = None) -> dict[str, str]:
    """The service roles' passwords: `given` (settings), else kept in `data_dir` (0600), made on first use."""
    if given:
        return dict(given)
    path = data_dir / ROLE_PASSWORDS_FILE
    if path.is_file():
        saved: dict[str, str] = json.loads(path.read_text())
        if all(s in saved for s in SERVICES):
            return saved
    made = {service: secrets.token_urlsafe(32) for service in SERVICES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(made))
    return made


def _connect_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url.replace("+asyncpg", ""))
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    return {
        "host": host,
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "password": parts.password or None,
        "database": parts.path.lstrip("/"),
    }


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _quiet(conn: asyncpg.Connection, sql: str) -> None:
    """Run `sql`, tolerating another process having just done the same (roles and grants are cluster-wide)."""
    try:
        await conn.execute(sql)
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        pass
    except asyncpg.InternalServerError as exc:  # "tuple concurrently updated": the other one's grant stands
        if "concurrently" not in str(exc):
            raise


async def _ensure_roles(admin_url: str, passwords: dict[str, str]) -> None:
    names = role_names(database_name(admin_url))
    conn = await asyncpg.connect(**_connect_kwargs(admin_url))
    try:
        for key, role in names.items():
            await _quiet(conn, f"CREATE ROLE {_ident(role)}")
            login = "NOLOGIN" if key == "owner" else "LOGIN"
            pw = await conn.fetchval("SELECT quote_literal($1::text)", passwords.get(key, ""))
            password = f" PASSWORD {pw}" if key != "owner" else ""
            await _quiet(
                conn,
                f"ALTER ROLE {_ident(role)} {login} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                f" NOINHERIT{password}",
            )
        owner = _ident(names["owner"])
        database = _ident(database_name(admin_url))
        await _quiet(conn, f"ALTER DATABASE {database} OWNER TO {owner}")
        await _quiet(conn, f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
        # Alembic's own table lives in `public`.
        await _quiet(conn, f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}")
        # Objects made before the roles existed (or by a superuser's migrations) pass to the owner.
        await _give_to_owner(conn, names["owner"])
    finally:
        await conn.close()


async def _give_to_owner(conn: asyncpg.Connection, owner: str) -> None:
    rows = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[]) AND nspowner <> $2::regrole",
        list(OUR_SCHEMAS),
        owner,
    )
    for row in rows:
        await conn.execute(f"ALTER SCHEMA {_ident(row['nspname'])} OWNER TO {_ident(owner)}")
    tables = await conn.fetch(
        "SELECT c.oid::regclass::text AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE (n.nspname = ANY($1::text[]) OR c.oid = to_regclass('public.alembic_version')) "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relowner <> $2::regrole",
        list(OUR_SCHEMAS),
        owner,
    )
    for row in tables:
        await conn.execute(f"ALTER TABLE {row['name']} OWNER TO {_ident(owner)}")  # its sequences follow
    sequences = await conn.fetch(
        "SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'S' AND c.relowner <> $2::regrole",
        list(OUR_SCHEMAS),
        owner,
    )
    for row in sequences:
        await conn.execute(f"ALTER SEQUENCE {row['name']} OWNER TO {_ident(owner)}")
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY($1::text[]) AND p.proowner <> $2::regrole",
        list(OUR_SCHEMAS),
        owner,
    )
    for row in functions:
        await conn.execute(f"ALTER FUNCTION {row['name']} OWNER TO {_ident(owner)}")
    types = await conn.fetch(
        "SELECT t.oid::regtype::text AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = ANY($1::text[]) AND t.typtype IN ('e', 'd') AND t.typowner <> $2::regrole",
        list(OUR_SCHEMAS),
        owner,
    )
    for row in types:
        await conn.execute(f"ALTER TYPE {row['name']} OWNER TO {_ident(owner)}")


async def _grant(admin_url: str) -> None:
    database = database_name(admin_url)
    names = role_names(database)
    owner = _ident(names["owner"])
    conn = await asyncpg.connect(**_connect_kwargs(admin_url))
    try:
        for service in SERVICES:
            role = _ident(names[service])
            statements = [
                f"GRANT CONNECT ON DATABASE {_ident(database)} TO {role}",
                f"GRANT USAGE ON SCHEMA {service} TO {role}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {service} TO {role}",
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {service} TO {role}",
                # Partitions the owner makes later (through the functions above) come with the same rights.
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {service} "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {service} "
                f"GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
                # The audit log: append and read, nothing else (the chain's trigger functions run as the caller).
                f"GRANT USAGE ON SCHEMA audit TO {role}",
                f"GRANT SELECT, INSERT ON audit.audit_log TO {role}",
                f"GRANT SELECT ON audit.seals TO {role}",
                *(sql.format(role=role) for sql in EXTRA_GRANTS.get(service, ())),
            ]
            for sql in statements:
                await _quiet(conn, sql)
    finally:
        await conn.close()


def prepare_database(admin_url: str, passwords: dict[str, str]) -> dict[str, str]:
    """Roles made, migrations applied as the owner, privileges granted; returns each service's database URL.

    `admin_url` must be able to create roles (a superuser: the embedded server's `postgres`, compose's `alpr`)."""
    asyncio.run(_ensure_roles(admin_url, passwords))
    upgrade(admin_url, role=role_names(database_name(admin_url))["owner"])
    asyncio.run(_grant(admin_url))
    return {service: service_database_url(admin_url, service, passwords.get(service)) for service in SERVICES}


async def drop_roles(admin_url: str) -> None:
    """Drop the roles of `admin_url`'s database (after that database is dropped; tests clean up with it)."""
    kwargs = _connect_kwargs(admin_url)
    names = role_names(kwargs["database"])
    conn = await asyncpg.connect(**{**kwargs, "database": "postgres"})
    try:
        for role in names.values():
            await conn.execute(f"DROP ROLE IF EXISTS {_ident(role)}")
    finally:
        await conn.close()

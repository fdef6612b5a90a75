"""`alpr access ...`: bootstrap and administer identities: the first administrator, people, clients, training."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from alpr.commands.common import with_database
from shared.errors import AppError
from shared.service_callers import CALLING_SERVICES, CLIENT_NAME_PREFIX
from shared.settings import Settings

T = TypeVar("T")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _run(settings: Settings, work: Callable[[AsyncSession, Any], Awaitable[T]]) -> T:
    """Run `work(session, passwords)` in one transaction against the configured (or embedded) database."""
    from services.access.security import Passwords
    from shared.db import create_sessionmaker

    settings = with_database(settings)
    assert settings.database_url is not None

    async def _go() -> T:
        engine = create_async_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session, Passwords(settings))
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(_go())


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password (12+ characters): ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("passwords differ")
    return first


def _create_person(args: argparse.Namespace, settings: Settings, roles: list[str], *, first_admin: bool) -> int:
    from services.access import identity
    from services.access.security import new_totp_secret, totp_uri
    from shared import audit

    password = _password(args)
    secret = new_totp_secret() if args.totp else None

    async def work(session: AsyncSession, passwords: Any) -> Any:
        if first_admin and await identity.admin_exists(session):
            raise SystemExit("an administrator exists already: use `alpr access add-user --role admin`")
        user = await identity.create_user(
            session, passwords, username=args.username, password=password, full_name=args.name, agency=args.agency,
            roles=roles, badge=args.badge, totp_secret=secret,
        )  # fmt: skip
        await audit.record(
            session, service="access", action="user.create", actor=_actor(), object_type="user",
            object_ids=[str(user.id)], details={"roles": roles, "badge": args.badge, "second_factor": bool(secret)},
        )  # fmt: skip
        return user

    try:
        user = _run(settings, work)
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    print(f"user {user.username} ({', '.join(user.roles)}) id {user.id}")
    if secret:
        print(f"TOTP secret {secret}\nTOTP enrolment URI {totp_uri(secret, user.username)}")
    return 0


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    return _create_person(args, settings, ["admin"], first_admin=True)


def cmd_add_user(args: argparse.Namespace, settings: Settings) -> int:
    return _create_person(args, settings, args.role, first_admin=False)


def cmd_add_client(args: argparse.Namespace, settings: Settings) -> int:
    from services.access import identity
    from shared import audit

    async def work(session: AsyncSession, _: Any) -> Any:
        client, secret = await identity.create_client(
            session, name=args.name, role=args.role, agency_name=args.agency_name, ori=args.ori
        )
        await audit.record(
            session, service="access", action="client.create", actor=_actor(), object_type="client",
            object_ids=[client.client_id], details={"role": args.role, "ori": args.ori},
        )  # fmt: skip
        return client, secret

    try:
        client, secret = _run(settings, work)
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    print(f"client_id {client.client_id}\nclient_secret {secret}\n(the secret is shown once; only its hash is kept)")
    return 0


def cmd_ensure_service_client(args: argparse.Namespace, settings: Settings) -> int:
    """The internal service client named by ALPR_SERVICE_CLIENT_ID / ALPR_SERVICE_CLIENT_SECRET, created when missing
    (docker compose runs this once per calling service, `--service ingest|hotlist`, before they start; `alpr up`
    makes its own). Without `--service` it is the older shared identity, which routes that name their callers
    refuse."""
    from sqlmodel import select

    from services.access import identity
    from services.access.models import Client
    from shared import audit

    if not (settings.service_client_id and settings.service_client_secret):
        print("refused: set ALPR_SERVICE_CLIENT_ID and ALPR_SERVICE_CLIENT_SECRET", file=sys.stderr)
        return 1
    client_id, secret = settings.service_client_id, settings.service_client_secret.get_secret_value()

    async def work(session: AsyncSession, _: Any) -> str:
        existing = (await session.exec(select(Client).where(Client.client_id == client_id))).first()
        if existing is not None:
            if SERVICE_ROLE not in existing.roles or not await identity.client_secret_valid(session, client_id, secret):
                raise AppError(f"client {client_id} exists with another secret or role: not changed")
            return "exists"
        name = f"{CLIENT_NAME_PREFIX}{args.service}" if args.service else "internal services"
        await identity.create_client(session, name=name, role=SERVICE_ROLE, client_id=client_id, secret=secret)
        await audit.record(
            session, service="access", action="client.create", actor=_actor(), object_type="client",
            object_ids=[client_id], details={"role": SERVICE_ROLE, "provisioned": True},
        )  # fmt: skip
        return "created"

    try:
        outcome = _run(settings, work)
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    print(f"service client {client_id}: {outcome}")
    return 0


SERVICE_ROLE = "service"


def cmd_rotate_service_secret(args: argparse.Namespace, settings: Settings) -> int:
    """A new secret for one calling service's identity, which `alpr up` keeps in `data_dir/service-<name>.json`,
    written back there (0600): the host's operator rotates it, never an administrator through the API. Restart that
    service after; the other services' keys are unchanged."""
    import json

    from alpr.bootstrap import service_client_file, write_private
    from services.access import identity
    from shared import audit

    path = settings.data_dir / service_client_file(args.service)
    if not path.is_file():
        print(f"refused: no {path} (compose: rotate ALPR_SERVICE_CLIENT_SECRET in .env)", file=sys.stderr)
        return 1
    client_id = json.loads(path.read_text())["client_id"]

    async def work(session: AsyncSession, _: Any) -> str:
        client = await identity.find_client(session, client_id, lock=True)
        if SERVICE_ROLE not in client.roles:
            raise AppError(f"client {client_id} is not the service identity")
        secret = await identity.rotate_client_secret(session, client)
        await audit.record(
            session, service="access", action="client.rotate_secret", actor=_actor(), object_type="client",
            object_ids=[client_id], details={"service_identity": True},
        )  # fmt: skip
        return secret

    try:
        secret = _run(settings, work)
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    write_private(path, json.dumps({"client_id": client_id, "client_secret": secret}))
    print(f"service client {client_id}: new secret written to {path}; restart {args.service} to use it")
    return 0


def cmd_add_training(args: argparse.Namespace, settings: Settings) -> int:
    from services.access import identity
    from shared import audit

    async def work(session: AsyncSession, _: Any) -> Any:
        user = await identity.find_user(session, args.user)
        if user is None:
            raise SystemExit(f"no user {args.user!r}")
        record = await identity.add_training(
            session, user, course=args.course, completed_on=args.completed, expires_on=args.expires,
            recorded_by=_actor(),
        )  # fmt: skip
        await audit.record(
            session, service="access", action="training.record", actor=_actor(), object_type="user",
            object_ids=[str(user.id)], details={"course": args.course, "expires_on": args.expires.isoformat()},
        )  # fmt: skip
        return record

    try:
        record = _run(settings, work)
    except AppError as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    print(f"training recorded for {args.user}: {record.course}, current until {record.expires_on}")
    return 0


def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from services.access import identity
    from shared import audit

    async def work(session: AsyncSession, _: Any) -> None:
        user = await identity.find_user(session, args.user)
        if user is None:
            raise SystemExit(f"no user {args.user!r}")
        await identity.unlock(session, user)
        await audit.record(
            session, service="access", action="user.unlock", actor=_actor(), object_type="user",
            object_ids=[str(user.id)],
        )  # fmt: skip

    _run(settings, work)
    print(f"{args.user} unlocked")
    return 0


def _set_user_disabled(disabled: bool):  # type: ignore[no-untyped-def]
    def cmd(args: argparse.Namespace, settings: Settings) -> int:
        from services.access import identity
        from shared import audit

        async def work(session: AsyncSession, _: Any) -> None:
            user = await identity.find_user(session, args.user, lock=True)
            if user is None:
                raise SystemExit(f"no user {args.user!r}")
            await identity.set_user_disabled(session, user, disabled)
            await audit.record(
                session, service="access", action="user.disable" if disabled else "user.enable", actor=_actor(),
                object_type="user", object_ids=[str(user.id)],
            )  # fmt: skip

        _run(settings, work)
        print(f"{args.user} {'disabled: its tokens stop working within seconds' if disabled else 're-enabled'}")
        return 0

    return cmd


def _client_change(action: str):  # type: ignore[no-untyped-def]
    def cmd(args: argparse.Namespace, settings: Settings) -> int:
        from services.access import identity
        from shared import audit

        async def work(session: AsyncSession, _: Any) -> str | None:
            try:
                client = await identity.find_client(session, args.client_id, lock=True)
            except Exception:  # noqa: BLE001 - NotFound: said plainly on the command line
                raise SystemExit(f"no client {args.client_id!r}") from None
            secret = None
            if action == "rotate_secret":
                secret = await identity.rotate_client_secret(session, client)
            else:
                await identity.set_client_disabled(session, client, action == "disable")
            await audit.record(
                session, service="access", action=f"client.{action}", actor=_actor(), object_type="client",
                object_ids=[client.client_id],
            )  # fmt: skip
            return secret

        secret = _run(settings, work)
        if secret is not None:
            print(
                f"client_id {args.client_id}\nclient_secret {secret}\n"
                "(shown once; tokens of the old secret are revoked)"
            )
        else:
            print(f"client {args.client_id} {action}d")
        return 0

    return cmd


def _person_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", required=True)
    p.add_argument("--name", required=True, help="full name")
    p.add_argument("--agency", required=True, help="the agency's ORI, e.g. MN0271200")
    p.add_argument("--badge", help="badge number (officers log in with it)")
    p.add_argument("--totp", action="store_true", help="enrol a TOTP second factor (prints the secret)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def register(sub: Any) -> None:
    access = sub.add_parser("access", help="identities: administrators, people, clients, training")
    cmds = access.add_subparsers(dest="access_command", required=True)

    p = cmds.add_parser("create-admin", help="create the first administrator")
    _person_args(p)
    p.set_defaults(func=cmd_create_admin)

    p = cmds.add_parser("add-user", help="add an officer, supervisor, auditor or administrator")
    _person_args(p)
    p.add_argument("--role", action="append", required=True, choices=["officer", "supervisor", "auditor", "admin"])
    p.set_defaults(func=cmd_add_user)

    p = cmds.add_parser("add-client", help="add an API client: an outside agency, or one of our services")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=["agency", "service"])
    p.add_argument("--agency-name")
    p.add_argument("--ori")
    p.set_defaults(func=cmd_add_client)

    p = cmds.add_parser(
        "ensure-service-client",
        help="create the internal service client from ALPR_SERVICE_CLIENT_ID/SECRET when missing (idempotent)",
    )
    p.add_argument("--service", choices=CALLING_SERVICES, help="the calling service this identity is (one each)")
    p.set_defaults(func=cmd_ensure_service_client)

    p = cmds.add_parser(
        "rotate-service-secret",
        help="a new secret for one service's identity in data_dir/service-<name>.json (the host's only)",
    )
    p.add_argument("--service", choices=CALLING_SERVICES, required=True, help="whose key: ingest or hotlist")
    p.set_defaults(func=cmd_rotate_service_secret)

    p = cmds.add_parser("add-training", help="record a completed ALPR training course")
    p.add_argument("--user", required=True, help="user name or badge")
    p.add_argument("--course", required=True)
    p.add_argument("--completed", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    p.add_argument("--expires", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    p.set_defaults(func=cmd_add_training)

    p = cmds.add_parser("unlock", help="lift a lock-out after failed logins")
    p.add_argument("--user", required=True, help="user name or badge")
    p.set_defaults(func=cmd_unlock)

    for name, disabled, text in (("disable-user", True, "disable a person (sessions end everywhere)"),
                                 ("enable-user", False, "re-enable a disabled person")):  # fmt: skip
        p = cmds.add_parser(name, help=text)
        p.add_argument("--user", required=True, help="user name or badge")
        p.set_defaults(func=_set_user_disabled(disabled))
    for name, action, text in (
        ("disable-client", "disable", "disable an API client (its tokens stop working everywhere)"),
        ("enable-client", "enable", "re-enable a disabled API client"),
        ("rotate-client-secret", "rotate_secret", "give an API client a new secret; the old one's tokens die"),
    ):
        p = cmds.add_parser(name, help=text)
        p.add_argument("--client-id", required=True)
        p.set_defaults(func=_client_change(action))

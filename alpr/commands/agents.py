"""`alpr agents ...`: register camera agents (OpenALPR alprd, Rekor Scout), rotate their tokens, disable them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from alpr.commands.common import run_json
from shared.settings import Settings


async def _note_agents(session: Any, settings: Settings) -> None:
    from services.ingest.agents.registry import agents_in, note_agents, snapshot_path

    # Before the token is printed: in the snapshot every ingest process reads (the running system's data folder),
    # so it works at once, even if PostgreSQL goes down the next moment.
    note_agents(snapshot_path(settings.data_dir), await agents_in(session))


def _run(settings: Settings, work: Callable[[Any], Awaitable[Any]], *, changes_agents: bool = False) -> int:
    return run_json(settings, work, refusal_as_json=True, after_commit=_note_agents if changes_agents else None)


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from services.ingest.agents import admin
    from services.ingest.agents.schemas import AgentCreate

    try:
        body = AgentCreate(
            name=args.name,
            agency=args.agency,
            kind=args.kind,
            unit=args.unit,
            lat=args.lat,
            lon=args.lon,
            placed_on=date.fromisoformat(args.placed_on) if args.placed_on else None,
            description=args.description,
        )
    except (ValidationError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2

    async def work(session: Any) -> Any:
        return (await admin.create_agent(session, body, None)).model_dump(mode="json")

    return _run(settings, work, changes_agents=True)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from services.ingest.agents import admin

    async def work(session: Any) -> Any:
        return [a.model_dump(mode="json") for a in await admin.list_agents(session, args.agency)]

    return _run(settings, work)


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from services.ingest.agents import admin

    async def work(session: Any) -> Any:
        return (await admin.rotate(session, await admin.find_agent(session, args.agent))).model_dump(mode="json")

    return _run(settings, work, changes_agents=True)


def _set_disabled(disabled: bool) -> Callable[[argparse.Namespace, Settings], int]:
    def cmd(args: argparse.Namespace, settings: Settings) -> int:
        from services.ingest.agents import admin

        async def work(session: Any) -> Any:
            agent = await admin.set_disabled(session, await admin.find_agent(session, args.agent), disabled)
            return admin.agent_out(agent).model_dump(mode="json")

        return _run(settings, work, changes_agents=True)

    return cmd


def cmd_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import text

    async def work(session: Any) -> Any:
        rows = await session.execute(
            text(
                "SELECT id, agent_id, received_at, data_type, reason FROM ingest.agent_quarantine "
                "ORDER BY received_at DESC LIMIT :n"
            ),
            {"n": args.limit},
        )
        return [dict(r._mapping) for r in rows]

    return _run(settings, work)


def register(sub: Any) -> None:
    agents = sub.add_parser("agents", help="camera agents (OpenALPR alprd, Rekor Scout)").add_subparsers(
        dest="agents_command", required=True
    )
    p = agents.add_parser("add", help="register an agent; prints its token once")
    p.add_argument("--name", required=True)
    p.add_argument("--agency", required=True, help="ORI")
    p.add_argument("--kind", choices=["fixed", "unit"], required=True)
    p.add_argument("--unit", help="kind unit: the unit it is mounted in")
    p.add_argument("--lat", type=float, help="kind fixed: where it stands")
    p.add_argument("--lon", type=float)
    p.add_argument("--placed-on", help="kind fixed: YYYY-MM-DD it was put in place")
    p.add_argument("--description")
    p.set_defaults(func=cmd_add)

    p = agents.add_parser("list", help="registered agents")
    p.add_argument("--agency")
    p.set_defaults(func=cmd_list)

    p = agents.add_parser("rotate", help="a new token (the old one stops working)")
    p.add_argument("agent", help="id or unique name")
    p.set_defaults(func=cmd_rotate)

    p = agents.add_parser("disable", help="refuse the agent's posts")
    p.add_argument("agent", help="id or unique name")
    p.set_defaults(func=_set_disabled(True))

    p = agents.add_parser("enable", help="accept the agent's posts again")
    p.add_argument("agent", help="id or unique name")
    p.set_defaults(func=_set_disabled(False))

    p = agents.add_parser("quarantine", help="posts that could not become reads, with the reason")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_quarantine)

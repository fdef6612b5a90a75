"""`alpr agencies suspend|resume|suspensions`: the host's switch for an agency's collection on the commissioner's
order (Minn. Stat. 13.824 subd. 6(b)), the same as the admin API's, audited as `cli:<user>` under the agency.

A running ingest sees it within a second for cars (the open-shift cache; the writer re-checks the shift in each
read's transaction) and at its next agents' registry refresh (`ALPR_INGEST_AGENT_REGISTRY_REFRESH_S`) for agents."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

from alpr.commands.common import run_json
from shared.settings import Settings


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def cmd_suspend(args: argparse.Namespace, settings: Settings) -> int:
    from services.ingest.suspension import start_suspension
    from shared import audit

    async def work(session: Any) -> Any:
        s, ended = await start_suspension(session, args.agency, args.order, args.reason, _actor())
        await audit.record(
            session, service="ingest", action="agency.suspend", actor=_actor(), agency=args.agency,
            object_type="agency", object_ids=[args.agency],
            details={"order_reference": args.order, "shifts_ended": len(ended), "via": "cli"},
        )  # fmt: skip
        return {"suspension_id": str(s.id), "agency": s.agency, "order_reference": s.order_reference,
                "suspended_at": s.suspended_at, "shifts_ended": len(ended)}  # fmt: skip

    return run_json(settings, work)


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from services.ingest.suspension import lift_suspension
    from shared import audit

    async def work(session: Any) -> Any:
        s = await lift_suspension(session, args.agency, args.reason, _actor())
        await audit.record(
            session, service="ingest", action="agency.suspension_lift", actor=_actor(), agency=args.agency,
            object_type="agency", object_ids=[args.agency],
            details={"order_reference": s.order_reference, "reason": args.reason, "via": "cli"},
        )  # fmt: skip
        return {"suspension_id": str(s.id), "agency": s.agency, "order_reference": s.order_reference,
                "suspended_at": s.suspended_at, "lifted_at": s.lifted_at}  # fmt: skip

    return run_json(settings, work)


def cmd_suspensions(args: argparse.Namespace, settings: Settings) -> int:
    from sqlalchemy import select

    from services.ingest.suspension_models import Suspension
    from shared import audit

    async def work(session: Any) -> Any:
        rows = (
            await session.execute(
                select(Suspension).where(Suspension.agency == args.agency).order_by(Suspension.suspended_at.desc())  # type: ignore[arg-type,attr-defined]
            )
        ).scalars()
        out = [
            {
                "suspension_id": str(s.id),
                "order_reference": s.order_reference,
                "reason": s.reason,
                "suspended_by": s.suspended_by,
                "suspended_at": s.suspended_at,
                "lifted_by": s.lifted_by,
                "lifted_at": s.lifted_at,
                "lift_reason": s.lift_reason,
            }  # fmt: skip
            for s in rows
        ]
        await audit.record(
            session, service="ingest", action="agency.suspensions", actor=_actor(), agency=args.agency,
            object_type="agency", object_ids=[args.agency], record_count=len(out), details={"via": "cli"},
        )  # fmt: skip
        return out

    return run_json(settings, work)


def _text(minimum: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if len(value) < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum} characters")
        return value

    return check


def register(sub: Any) -> None:
    agencies = sub.add_parser("agencies", help="an agency's collection: suspend and resume on the commissioner's order")
    cmds = agencies.add_subparsers(dest="agencies_command", required=True)

    p = cmds.add_parser("suspend", help="suspend the agency's collection (13.824 subd. 6(b)); open shifts end")
    p.add_argument("--agency", required=True, type=_text(1), help="ORI")
    p.add_argument("--order", required=True, type=_text(1), help="the commissioner's order")
    p.add_argument("--reason", required=True, type=_text(3))
    p.set_defaults(func=cmd_suspend)

    p = cmds.add_parser("resume", help="lift the agency's suspension: collection may resume")
    p.add_argument("--agency", required=True, type=_text(1), help="ORI")
    p.add_argument("--reason", required=True, type=_text(3), help="e.g. the order lifting it")
    p.set_defaults(func=cmd_resume)

    p = cmds.add_parser("suspensions", help="the agency's suspensions, newest first")
    p.add_argument("--agency", required=True, type=_text(1), help="ORI")
    p.set_defaults(func=cmd_suspensions)

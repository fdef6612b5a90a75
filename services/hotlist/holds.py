"""Holds on hits (a supervisor keeps hits past retention for a case) and the figures the access service's reports
need from hotlist (internal, role `service`): hits, dispositions, list versions in force, purges, the check."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from services.hotlist import facts, retention
from services.hotlist.deps import EngineDep, SettingsDep
from services.hotlist.models import Hit
from services.hotlist.retention_models import HitHold, HitHoldItem
from shared.audit import client_ip
from shared.auth import AUDITOR, SERVICE, SUPERVISOR, Principal, require_roles
from shared.db import SessionDep
from shared.errors import NotFound, Unprocessable
from shared.holds import HoldBook, HoldRelease, HoldSummary, HoldTerms, summary_fields
from shared.scoping import Scoped
from shared.service_callers import ACCESS_ONLY, check_caller

router = APIRouter(tags=["retention"])
Supervisor = Annotated[Principal, Depends(require_roles(SUPERVISOR))]
HoldReader = Annotated[Principal, Depends(require_roles(SUPERVISOR, AUDITOR))]
Service = Annotated[Principal, Depends(require_roles(SERVICE))]


class HitHoldIn(HoldTerms):
    hit_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class HitHoldOut(HoldSummary):
    hits: int


class HitHoldList(BaseModel):
    holds: list[HitHoldOut]


class ReportFigures(BaseModel):
    """Hotlist's part of the log of use and the biennial audit, for [start, end)."""

    start: datetime
    end: datetime
    versions_in_force: list[dict[str, Any]]
    agency_lists: list[dict[str, Any]]
    hits_by_unit_day: list[dict[str, Any]]
    # Subd. 5(a)(3): [unit, agency, day, category, list, covert, hits] rows (arrays: two years are tens of
    # thousands); covert rows never reach the public log of use.
    hits_by_unit_day_category: list[list[Any]] = Field(default_factory=list)
    hits_by_category: dict[str, int]
    hits_by_list: dict[str, int]
    hits_total: int
    covert_hits_total: int = 0
    dispositions_by_outcome: dict[str, int]
    hits_with_disposition: int
    minutes_to_disposition: dict[str, float | None]
    purges: list[dict[str, Any]]
    holds_placed: int
    holds_released: int
    holds_active: int
    hits_held: int
    check: dict[str, Any]


HOLDS = HoldBook(
    service="hotlist", held="hit", hold=HitHold, item=HitHoldItem, item_key="hit_id", released_type="hit_hold"
)


def _out(h: HitHold, n: int) -> HitHoldOut:
    return HitHoldOut(**summary_fields(h), hits=n)


@router.post("/v1/hit-holds", status_code=201, summary="Keep these hits past retention for a case")
async def place_hold(
    body: HitHoldIn, request: Request, principal: Supervisor, session: SessionDep, scope: Scoped
) -> HitHoldOut:
    ids = list(dict.fromkeys(body.hit_ids))
    # Only the caller's agency's hits: another agency's are as if they did not exist.
    stmt = scope.where(select(Hit.id).where(Hit.id.in_(ids)), Hit.custodian)  # type: ignore[attr-defined]
    found = set((await session.execute(stmt)).scalars())
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise NotFound(f"no such hits in your agency (already purged, or never stored): {missing[:20]}")
    hold = await HOLDS.place(session, request, principal, scope, body, ids, [HitHoldItem(hit_id=i) for i in ids])
    return _out(hold, len(ids))


@router.post("/v1/hit-holds/{hold_id}/release", summary="Release a hold on hits")
async def release_hold(
    hold_id: uuid.UUID, body: HoldRelease, request: Request, principal: Supervisor, session: SessionDep, scope: Scoped
) -> HitHoldOut:
    hold, n = await HOLDS.release(session, request, principal, scope, hold_id, body)
    return _out(hold, n)


@router.get("/v1/hit-holds", summary="Holds on hits, newest first")
async def list_holds(
    request: Request, principal: HoldReader, session: SessionDep, scope: Scoped, case_number: str | None = None
) -> HitHoldList:
    holds, counts = await HOLDS.listed(session, scope, case_number=case_number, limit=500)
    # A listing names cases and reasons: accessed data, audited like any other (13.824 subd. 7(b)).
    await scope.audit(
        session, service="hotlist", action="hit_holds.list", object_type="hit_hold",
        object_ids=[str(h.id) for h in holds], source_ip=client_ip(request), record_count=len(holds),
        details={"case_number": case_number},
    )  # fmt: skip
    return HitHoldList(holds=[_out(h, counts.get(h.id, 0)) for h in holds])


def _period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise Unprocessable("start and end need a zone, and end must follow start")


@router.get("/v1/internal/report", summary="Hotlist's figures for the log of use and the biennial audit")
async def report_figures(
    request: Request,
    principal: Service,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    start: datetime = Query(description="period start, ISO 8601 with zone"),
    end: datetime = Query(description="period end, ISO 8601 with zone"),
    agency: str = Query(description="the custodian agency (ORI) whose figures these are; each report is one's"),
) -> ReportFigures:
    check_caller(principal, ACCESS_ONLY)  # access's reports only: figures are not another service's
    _period(start, end)
    p = {"s": start, "e": end, "agency": agency}

    async def rows(sql: str) -> list[Any]:
        return list((await session.execute(text(sql), p)).all())

    # A version was in force from its load until the next version's load.
    versions = await rows(
        "SELECT id, loaded_at, entries, sha256, next_loaded FROM (SELECT id, loaded_at, entries, sha256, "
        "lead(loaded_at) OVER (ORDER BY id) AS next_loaded FROM hotlist.list_versions) v "
        "WHERE loaded_at < :e AND (next_loaded IS NULL OR next_loaded > :s) ORDER BY id"
    )
    lists = await rows(
        "SELECT l.name, l.owner, l.covert, count(e.id) FILTER (WHERE e.created_at < :e AND "
        "(e.removed_at IS NULL OR e.removed_at > :s)) FROM hotlist.agency_lists l "
        "LEFT JOIN hotlist.agency_entries e ON e.list_id = l.id WHERE l.created_at < :e AND l.agency = :agency "
        "GROUP BY l.id ORDER BY l.name"
    )
    # Counts from the daily facts (services/hotlist/facts.py): the same before and after the purge.
    found = await facts.period(session, start, end, agency=agency)
    fact_rows = found.rows
    per_unit_day: dict[tuple[str, str], int] = {}
    by_cat: dict[str, int] = {}
    by_list: dict[str, int] = {}
    disp = found.outcomes
    for f in fact_rows:
        per_unit_day[(f.unit, f.day)] = per_unit_day.get((f.unit, f.day), 0) + f.hits
        by_cat[f.category] = by_cat.get(f.category, 0) + f.hits
        by_list[f.list_name] = by_list.get(f.list_name, 0) + f.hits
    ttd = (
        await rows(
            "WITH first AS (SELECT d.hit_id, min(d.at) AS at FROM hotlist.hit_dispositions d GROUP BY d.hit_id) "
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - h.created_at)), "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM f.at - h.created_at)), "
            "max(extract(epoch FROM f.at - h.created_at)) FROM first f JOIN hotlist.hits h ON h.id = f.hit_id "
            "WHERE coalesce(h.captured_at, h.created_at) >= :s AND coalesce(h.captured_at, h.created_at) < :e "
            "AND coalesce(h.agency, '') = :agency"
        )
    )[0]
    purges = await rows(
        "SELECT id, started_at, trigger, actor, status, cutoff, hits_destroyed, verifications_destroyed, "
        "dispositions_destroyed, hits_kept_held FROM hotlist.purge_runs WHERE started_at >= :s AND started_at < :e "
        "ORDER BY started_at"
    )
    holds = (
        await rows(
            "SELECT count(*) FILTER (WHERE placed_at >= :s AND placed_at < :e), "
            "count(*) FILTER (WHERE released_at >= :s AND released_at < :e), "
            "count(*) FILTER (WHERE released_at IS NULL) FROM hotlist.hit_holds WHERE agency = :agency"
        )
    )[0]
    held = (
        await session.execute(
            text(f"SELECT count(*) FROM hotlist.hits WHERE id IN ({retention.ACTIVE_HELD}) AND custodian = :agency"),
            p,
        )
    ).scalar_one()  # the agency's own hits held (its report is its own)

    def minutes(v: float | None) -> float | None:
        return round(v / 60, 2) if v is not None else None

    return ReportFigures(
        start=start,
        end=end,
        versions_in_force=[
            {"version": v[0], "loaded_at": v[1], "entries": v[2], "sha256": v[3], "replaced_at": v[4]} for v in versions
        ],
        agency_lists=[{"name": r[0], "owner": r[1], "covert": r[2], "entries_in_force": int(r[3])} for r in lists],
        hits_by_unit_day=[{"unit": u, "day": d, "hits": n} for (u, d), n in sorted(per_unit_day.items())],
        hits_by_unit_day_category=[
            [f.unit, f.agency, f.day, f.category, f.list_name, f.covert, f.hits]
            for f in sorted(fact_rows, key=lambda f: (f.agency, f.unit, f.day, f.category, f.list_name))
        ],
        hits_by_category=dict(sorted(by_cat.items())),
        hits_by_list=dict(sorted(by_list.items())),
        hits_total=sum(by_cat.values()),
        covert_hits_total=sum(f.hits for f in fact_rows if f.covert),
        dispositions_by_outcome=disp,
        hits_with_disposition=sum(disp.values()),
        minutes_to_disposition={"p50": minutes(ttd[1]), "p90": minutes(ttd[2]), "max": minutes(ttd[3])},
        purges=[
            {
                "run_id": str(r[0]),
                "started_at": r[1].isoformat(),
                "trigger": r[2],
                "actor": r[3],
                "status": r[4],
                "cutoff": r[5].isoformat(),
                "hits_destroyed": int(r[6]),
                "verifications_destroyed": int(r[7]),
                "dispositions_destroyed": int(r[8]),
                "hits_kept_held": int(r[9]),
            }
            for r in purges
        ],
        holds_placed=int(holds[0]),
        holds_released=int(holds[1]),
        holds_active=int(holds[2]),
        hits_held=int(held),
        check=await retention.check(engine, settings, held_reads=request.app.state.ingest.held_reads, agency=agency),
    )

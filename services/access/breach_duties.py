"""The duties a breach of security sets (Minn. Stat. 13.055, as last amended in 2014), each with its due date.

The statute gives a government entity no number of days: the individuals are told "in the most expedient time
possible and without unreasonable delay" (subd. 2(a)), the nationwide consumer reporting agencies too when more than
1,000 individuals are told at one time (subd. 5), and the report is prepared "upon completion of the investigation"
and final disposition of any disciplinary action (subd. 2(b)). So each due date is the agency's own reading, a setting
(`ALPR_BREACH_NOTICE_TARGET_DAYS`, `ALPR_BREACH_REPORT_TARGET_DAYS`, docs/settings.md): counted from discovery, the
notices' clock paused while a documented law-enforcement delay is in force (subd. 3), the report's from the recorded
end of the investigation. The comprehensive security assessment is due at least annually (subd. 6): 365 days after
the last one recorded, or after the agency's first person was made when none is.

Overdue duties show in `GET /v1/breaches`, on access `/readyz` (a warning: readiness does not fail on them), in the
gauge `alpr_access_breach_duties_overdue` (docker/prometheus-alerts.yml) and on the compliance dashboard.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import FastAPI
from prometheus_client import Gauge
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import AsyncSession as SaSession
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access.notice_models import BreachNotice
from shared.settings import Settings

CRA_THRESHOLD = 1000  # subd. 5: "more than 1,000 individuals at one time"
ASSESSMENT_EVERY = timedelta(days=365)  # subd. 6: "at least annually"
INDIVIDUALS, CRA = "individuals", "consumer_reporting_agencies"

DutyName = Literal["notify_individuals", "notify_consumer_reporting_agencies", "investigation_report"]
DUTIES: tuple[str, ...] = (
    "notify_individuals",
    "notify_consumer_reporting_agencies",
    "investigation_report",
    "security_assessment",
)

OVERDUE = Gauge(
    "alpr_access_breach_duties_overdue",
    "Duties of 13.055 past their due date, every agency: a breach's notices to individuals and to the consumer "
    "reporting agencies, its investigation report, and agencies whose annual security assessment is overdue",
    ["duty"],
)
for _duty in DUTIES:
    OVERDUE.labels(_duty)


class Duty(BaseModel):
    duty: DutyName
    clause: str
    due_at: datetime | None  # None: paused (law-enforcement delay) or not yet running (investigation open)
    done_at: datetime | None
    paused: bool = False
    overdue: bool
    note: str


def _delays(b: BreachNotice, until: datetime) -> tuple[timedelta, bool]:
    """How long the law-enforcement delays held the notice back before `until` (overlaps counted once), and
    whether one is in force now."""
    spans = []
    in_force = False
    for d in b.law_enforcement_delays:
        start = max(datetime.fromisoformat(d["since"]), b.discovered_at)
        end = datetime.fromisoformat(d["until"]) if d.get("until") else None
        in_force = in_force or end is None
        spans.append((start, min(end or until, until)))
    total, reach = timedelta(0), None
    for start, end in sorted(spans):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += end - start
            reach = end
    return total, in_force


def _told(b: BreachNotice, to: str) -> datetime | None:
    times = [datetime.fromisoformat(n["at"]) for n in b.notified if n.get("to") == to]
    return min(times) if times else None


def duties(b: BreachNotice, settings: Settings, now: datetime | None = None) -> list[Duty]:
    """The duties that apply to this breach, each with its due date and whether it is overdue."""
    now = now or datetime.now(UTC)
    target = timedelta(days=settings.breach_notice_target_days)
    out = []
    notices: list[tuple[DutyName, str, str, str]] = [
        ("notify_individuals", "13.055 subd. 2(a), 3", INDIVIDUALS,
         "written notice to each affected individual: that a report will be prepared and how to request it"),
    ]  # fmt: skip
    if b.individuals_affected is not None and b.individuals_affected > CRA_THRESHOLD:
        notices.append(
            ("notify_consumer_reporting_agencies", "13.055 subd. 5", CRA,
             "the nationwide consumer reporting agencies: the timing, distribution and content of the notices"),
        )  # fmt: skip
    for name, clause, to, note in notices:
        done = _told(b, to)
        paused_for, in_force = _delays(b, done or now)
        if done is None and in_force:
            out.append(Duty(duty=name, clause=clause, due_at=None, done_at=None, paused=True, overdue=False,
                            note=f"{note}; paused while a law-enforcement agency says notice would impede an active "
                                 "criminal investigation"))  # fmt: skip
            continue
        due = b.discovered_at + target + paused_for
        out.append(
            Duty(duty=name, clause=clause, due_at=due, done_at=done, overdue=done is None and due < now, note=note)
        )
    report_note = "the report on the breach (for an employee's unauthorized access: the type of data, the number of "
    report_note += "individuals, each responsible employee and the final disposition)"
    if b.investigation_completed_at is None:
        due_report = None
        report_note += "; due once the investigation and any disciplinary action end (record that)"
    else:
        due_report = b.investigation_completed_at + timedelta(days=settings.breach_report_target_days)
    report_done = b.report_recorded_at if b.investigation_report else None
    out.append(
        Duty(
            duty="investigation_report",
            clause="13.055 subd. 2(b)",
            due_at=due_report,
            done_at=report_done,
            overdue=report_done is None and due_report is not None and due_report < now,
            note=report_note,
        )
    )
    return out


_ASSESSMENTS_OVERDUE_SQL = """
WITH since AS (SELECT agency, min(created_at) AS at FROM access.users GROUP BY agency),
     last AS (SELECT agency, max(performed_on)::timestamptz AS at FROM access.security_assessments GROUP BY agency)
SELECT coalesce(l.agency, s.agency) AS agency, coalesce(l.at, s.at) AS basis, l.at IS NOT NULL AS assessed
FROM since s FULL JOIN last l ON l.agency = s.agency
"""


async def assessment_status(session: SaSession, agency: str) -> tuple[datetime | None, datetime | None]:
    """(the last assessment's day, when the next is due) for one agency; the first is due a year after the
    agency's first person was made (None: the agency has no one yet)."""
    row = (
        await session.execute(text(f"SELECT * FROM ({_ASSESSMENTS_OVERDUE_SQL}) a WHERE agency = :a"), {"a": agency})
    ).first()
    if row is None:
        return None, None
    return (row.basis if row.assessed else None), row.basis + ASSESSMENT_EVERY


async def overdue_counts(engine: AsyncEngine, settings: Settings) -> dict[str, int]:
    """Each duty's overdue count over every agency (/readyz and the gauge: counts, never an agency's records)."""
    counts = dict.fromkeys(DUTIES, 0)
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session:
        # Breach records are few (a handful a year, if any): each one's duties computed as the API shows them.
        for b in (await session.exec(select(BreachNotice))).all():
            for d in duties(b, settings, now):
                counts[d.duty] += d.overdue
        for r in (await session.execute(text(_ASSESSMENTS_OVERDUE_SQL))).all():
            counts["security_assessment"] += r.basis + ASSESSMENT_EVERY < now
    return counts


async def breach_duties_overdue(app: FastAPI) -> str | None:
    """/readyz: a warning (not a failure) while any 13.055 duty is past its due date."""
    try:
        counts = await overdue_counts(app.state.engine, app.state.settings)
    except Exception:  # noqa: BLE001 - PostgreSQL down or not migrated: its own check reports that
        return None
    late = {k: v for k, v in counts.items() if v}
    if not late:
        return None
    said = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in late.items())
    return f"13.055 duties overdue ({said}): GET /v1/breaches and GET /v1/security-assessments"


async def breach_duties_gauge(app: FastAPI) -> None:
    """Scrape-time probe of `alpr_access_breach_duties_overdue`."""
    for duty, n in (await overdue_counts(app.state.engine, app.state.settings)).items():
        OVERDUE.labels(duty).set(n)


def summary(b: BreachNotice, settings: Settings) -> dict[str, Any]:
    """The dashboard's row: the open duties with their due dates."""
    open_ = [d for d in duties(b, settings) if d.done_at is None]
    return {
        "id": str(b.id),
        "discovered_at": b.discovered_at.isoformat(),
        "notified": len(b.notified),
        "duties": [
            {
                "duty": d.duty.replace("_", " "),
                "due_at": d.due_at.isoformat()[:16] if d.due_at else None,
                "paused": d.paused,
                "overdue": d.overdue,
            }
            for d in open_
        ],  # fmt: skip
        "overdue": any(d.overdue for d in open_),
    }

"""The statutory reports (Minn. Stat. 13.824 subd. 5 log of use, subd. 6 biennial audit), built in access from
its own tables and from figures ingest and hotlist serve on internal endpoints (HTTP only, role `service`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.access import exigency
from services.access.security import KeyRing
from shared.acting_for import ACT_FOR_TTL_S, act_for_claims
from shared.audit import verify_chain
from shared.errors import Unavailable
from shared.http import service_client
from shared.text import csv_cell

SERVICE_SUBJECT = "service:access"


class FiguresClient:
    """GETs on ingest's and hotlist's internal report endpoints; transports injectable for in-process tests."""

    def __init__(
        self,
        keys: KeyRing,
        urls: dict[str, str],
        *,
        timeout_s: float,
        transports: dict[str, httpx.AsyncBaseTransport | None] | None = None,
    ) -> None:
        self.keys = keys
        self.urls = urls
        self.timeout_s = timeout_s
        self.transports = transports or {}

    async def get(
        self,
        service: str,
        path: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        agency: str | None = None,
    ) -> dict[str, Any]:
        """`agency`: the custodian agency whose figures the report shows (the caller's scope)."""
        params: dict[str, str] = {"start": start.isoformat(), "end": end.isoformat()} if start and end else {}
        if agency is not None:
            params["agency"] = agency
        token = self.keys.sign(subject=SERVICE_SUBJECT, ttl_s=120, claims={"roles": ["service"]})
        try:
            async with service_client(
                self.urls[service], timeout_s=self.timeout_s, transport=self.transports.get(service)
            ) as client:
                resp = await client.get(
                    path,
                    params=params or None,
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"the {service} service is unreachable: the report needs its figures, retry later"
            ) from exc
        if resp.status_code != 200:
            raise Unavailable(f"the {service} service answered {resp.status_code} for its report figures, retry later")
        data: dict[str, Any] = resp.json()
        return data

    async def post(self, service: str, path: str, body: dict[str, Any], *, grant_id: str) -> dict[str, Any]:
        """A POST on an internal endpoint that reads under `grant_id` (its agency: `body["agency"]`, the token
        signed for this body only); a 4xx answer keeps its status and detail (the caller's input was wrong)."""
        claims = act_for_claims(grant_id, body["agency"], body)
        token = self.keys.sign(subject=SERVICE_SUBJECT, ttl_s=ACT_FOR_TTL_S, claims=claims)
        try:
            async with service_client(
                self.urls[service], timeout_s=self.timeout_s, transport=self.transports.get(service)
            ) as client:
                resp = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise Unavailable(f"the {service} service is unreachable, retry later") from exc
        if resp.status_code in (404, 409, 422):
            raise ServiceRefused(resp.status_code, str(resp.json().get("detail", "refused")))
        if resp.status_code != 200:
            raise Unavailable(f"the {service} service answered {resp.status_code}, retry later")
        data: dict[str, Any] = resp.json()
        return data


class ServiceRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


COVERT_LISTS = "(covert lists, not named)"


def _hours(a: str, b: str | None, start: datetime, end: datetime) -> float:
    s = max(datetime.fromisoformat(a), start)
    e = min(datetime.fromisoformat(b) if b else datetime.now(UTC), end)
    return max((e - s).total_seconds() / 3600, 0.0)


def _day(u: dict[str, Any], day: str) -> dict[str, Any]:
    d: dict[str, Any] = u["days"].setdefault(
        day,
        {
            "day": day,
            "reads": 0,
            "plates_read": 0,
            "distinct_plates": 0,
            "reads_no_plate": 0,
            "hits": 0,
            "hits_by_category": {},
        },
    )
    return d


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


async def log_of_use(
    figures: FiguresClient,
    start: datetime,
    end: datetime,
    *,
    agency: str,
    public: bool,
    hot: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One agency's log of use (`agency`, the custodian ORI; ingest and hotlist count only its records). Per unit:
    active intervals (shifts), reads per shift and per day (with plates, distinct plates and reads with no plate),
    hits per day by category (subd. 5(a)(3)); the databases compared. Counted from the daily facts, so a period
    reads the same after its purge. The public version carries no badge, officer, covert list or shift id: a hit
    on a covert list counts in its category and day (subd. 5(a)(3)) under an unnamed list."""
    usage = await figures.get("ingest", "/v1/internal/usage", start, end, agency=agency)
    if hot is None:
        hot = await figures.get("hotlist", "/v1/internal/report", start, end, agency=agency)
    # Keyed by (agency, unit): unit names are unique per agency only, so same-named units never merge.
    units: dict[tuple[str, str], dict[str, Any]] = {}

    def unit(name: str, unit_agency: str | None) -> dict[str, Any]:
        return units.setdefault(
            (unit_agency or "", name),
            {
                "unit": name,
                "agency": unit_agency or "",
                "active_intervals": [],
                "active_hours": 0.0,
                "reads": 0,
                "plates_read": 0,
                "distinct_plates": 0,
                "reads_no_plate": 0,
                "hits": 0,
                "hits_by_category": {},
                "days": {},
            },
        )

    for sh in usage["shifts"]:
        u = unit(sh["unit"], sh.get("agency"))
        interval: dict[str, Any] = {"start": sh["started_at"], "end": sh["ended_at"], "reads": sh["reads"]}
        if not public:
            interval.update(shift_id=sh["shift_id"], badge=sh["badge"], cameras=sh["cameras"])
        u["active_intervals"].append(interval)
        u["active_hours"] = round(u["active_hours"] + _hours(sh["started_at"], sh["ended_at"], start, end), 3)
    classification: dict[str, int] = usage.get("classification", {})
    for row in usage["reads_by_unit_day"]:
        u = unit(row["unit"], row.get("agency"))
        d = _day(u, row["day"])
        no_plate = row.get("reads_no_plate", 0)
        for target in (u, d):
            target["reads"] += row["reads"]
            target["plates_read"] += row["reads"] - no_plate
            target["distinct_plates"] += row.get("distinct_plates", 0)
            target["reads_no_plate"] += no_plate
    by_category: dict[str, int] = {}
    by_list: dict[str, int] = {}
    for unit_name, hit_agency, day, category, list_name, covert, n in hot.get("hits_by_unit_day_category", []):
        if public and covert:
            list_name = COVERT_LISTS  # counted, never named (nor its owner or case)
        u = unit(unit_name or "(no unit)", hit_agency)
        d = _day(u, day)
        for target in (u, d):
            target["hits"] += n
            _add(target["hits_by_category"], category, n)
        _add(by_category, category, n)
        _add(by_list, list_name, n)
    out_units = []
    for key in sorted(units):
        u = units[key]
        u["days"] = [u["days"][d] for d in sorted(u["days"])]
        out_units.append(u)
    lists = [lst for lst in hot["agency_lists"] if not (public and lst["covert"])]
    return {
        "report": "log_of_use",
        "statute": "Minn. Stat. 13.824 subd. 5",
        "public": public,
        "agency": agency,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": datetime.now(UTC).isoformat(),
        "units": out_units,
        # Periods the commissioner suspended the agency's collection (13.824 subd. 6(b)).
        "suspensions": usage.get("suspensions", []),
        "fixed_readers": fixed_readers(
            await figures.get("ingest", "/v1/internal/readers", start, end), start, end, agency=agency
        ),
        "databases_compared": {
            "bca_hot_list_versions": hot["versions_in_force"],
            "agency_lists": [{"name": lst["name"], "entries_in_force": lst["entries_in_force"]} for lst in lists],
        },
        "totals": {
            "reads": usage["reads_total"],
            "plates_read": usage["reads_total"] - usage.get("reads_no_plate_total", 0),
            "distinct_plates_by_day": usage.get("distinct_plates_by_day_total", 0),
            "reads_no_plate": usage.get("reads_no_plate_total", 0),
            "hits": sum(u["hits"] for u in out_units),
            "hits_by_category": dict(sorted(by_category.items())),
            "hits_by_list": dict(sorted(by_list.items())),
            "classification": dict(sorted(classification.items())),
            "active_hours": round(sum(u["active_hours"] for u in out_units), 3),
            "units": len(out_units),
        },
    }


def fixed_readers(
    reg: dict[str, Any], start: datetime, end: datetime, *, agency: str | None = None
) -> list[dict[str, Any]]:
    """Per fixed reader: the locations in force in the period (with their dates) and when it collected data;
    `agency`: that agency's readers only (the register names each reader's agency)."""
    if agency is not None:
        ours = {r["reader_id"].removeprefix("agent:") for r in reg["readers"] if (r.get("agency") or "") == agency}
        reg = {
            **reg,
            "fixed_locations": [x for x in reg["fixed_locations"] if str(x["agent_id"]) in ours],
            "fixed_activity": [x for x in reg["fixed_activity"] if str(x["agent_id"]) in ours],
        }
    out: dict[str, dict[str, Any]] = {}
    s_day, e_day = start.date(), end.date()
    for loc in reg["fixed_locations"]:
        placed, until = date.fromisoformat(loc["placed_on"]), loc["until"]
        if placed > e_day or (until is not None and date.fromisoformat(until) <= s_day):
            continue
        r = out.setdefault(
            loc["agent_id"],
            {"reader": loc["name"], "agent_id": loc["agent_id"], "locations": [], "active_intervals": []},
        )
        r["locations"].append({"lat": loc["lat"], "lon": loc["lon"], "placed_on": loc["placed_on"], "until": until})
    names = {r["reader_id"]: r["name"] for r in reg["readers"]}
    for act in reg["fixed_activity"]:
        r = out.setdefault(
            act["agent_id"],
            {
                "reader": names.get(f"agent:{act['agent_id']}", act["agent_id"]),
                "agent_id": act["agent_id"],
                "locations": [],
                "active_intervals": [],
            },
        )
        r["active_intervals"] = [{"start": i["start"], "end": i["end"]} for i in act["intervals"]]
        r["reads"] = act["reads"]
    for r in out.values():
        r.setdefault("reads", 0)
        r["active_hours"] = round(sum(_hours(i["start"], i["end"], start, end) for i in r["active_intervals"]), 3)
    return sorted(out.values(), key=lambda r: (r["reader"], r["agent_id"]))


def log_of_use_csv(report: dict[str, Any]) -> str:
    """One row per unit and day: the figures an auditor or a member of the public opens in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "unit",
            "day",
            "reads",
            "plates_read",
            "distinct_plates",
            "reads_no_plate",
            "hits",
            "hits_by_category",
            "active_intervals",
        ]
    )
    for u in report["units"]:
        for d in u["days"]:
            intervals = [
                f"{i['start']}/{i['end'] or 'open'}"
                for i in u["active_intervals"]
                if i["start"][:10] <= d["day"] <= (i["end"] or "9999")[:10]
            ]
            cats = " ".join(f"{k}={v}" for k, v in sorted(d["hits_by_category"].items()))
            w.writerow(
                [
                    csv_cell(u["unit"]),  # a unit's name is its agency's text
                    d["day"],
                    d["reads"],
                    d["plates_read"],
                    d["distinct_plates"],
                    d["reads_no_plate"],
                    d["hits"],
                    cats,
                    " ".join(intervals),
                ]
            )
    return buf.getvalue()


# A request is an agency's when it filed it, or when the agency's supervisor granted it access to the agency's data
# (an outside agency's request is in the custodian's audit).
_OURS = (
    "(coalesce(r.requester_agency, '') = :agency OR EXISTS (SELECT 1 FROM access.grants g "
    "WHERE g.request_id = r.id AND g.data_agency = :agency))"
)


# The disclosures table as the biennial audit prints it (the PDF and the HTML page alike): heading, then field.
DISCLOSURE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("case number", "case_number"), ("recipient", "recipient"), ("ORI", "recipient_ori"),
    ("legal basis", "legal_basis"), ("records", "records"), ("when", "disclosed_at"),
)  # fmt: skip


def disclosure_table(access: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The headings and rows of the audit's disclosures table."""
    return [h for h, _ in DISCLOSURE_COLUMNS], [[x[k] for _, k in DISCLOSURE_COLUMNS] for x in access["disclosures"]]


# The accesses to stored data (searches, photo views, disclosures and exports, following a unit's live stream) that
# the audit names: each with the grant it used, and that grant's request and legal basis.
ACCESS_ACTIONS = ("reads.search", "image.view", "disclosure", "stream.follow")


async def accesses_against_grants(session: AsyncSession, start: datetime, end: datetime, agency: str) -> dict[str, Any]:
    """Subd. 6 and 7(b): every access of the agency's users in the period with the grant, request and legal basis
    it rested on; an access without a grant is flagged (a live stream is followed by role, not under a grant)."""
    found = (
        await session.execute(
            text(
                "SELECT a.seq, a.at, a.action, a.actor, a.grant_id, a.case_number, a.outcome, a.record_count, "
                "g.request_id, v.legal_basis, v.warrant_number IS NOT NULL, v.exigency_attestation IS NOT NULL "
                "FROM audit.audit_log a LEFT JOIN access.grants g ON CAST(g.id AS text) = a.grant_id "
                "LEFT JOIN access.request_versions v ON v.request_id = g.request_id AND v.version = g.version "
                "WHERE a.at >= :s AND a.at < :e AND a.agency = :agency AND a.action = ANY(:actions) ORDER BY a.seq"
            ),
            {"s": start, "e": end, "agency": agency, "actions": list(ACCESS_ACTIONS)},
        )
    ).all()
    entries = [
        {
            "seq": r[0],
            "at": r[1].isoformat(),
            "action": r[2],
            "actor": r[3],
            "grant_id": r[4],
            "case_number": r[5],
            "outcome": r[6],
            "records": r[7],
            "request_id": str(r[8]) if r[8] else None,
            "legal_basis": r[9],
            "warrant": bool(r[10]),
            "exigency": bool(r[11]),
            "without_grant": r[8] is None,
        }  # fmt: skip
        for r in found
    ]
    return {
        "entries": entries,
        "by_action": {a: sum(1 for e in entries if e["action"] == a) for a in ACCESS_ACTIONS},
        "without_grant": sum(1 for e in entries if e["without_grant"]),
    }


async def _access_figures(session: AsyncSession, start: datetime, end: datetime, agency: str) -> dict[str, Any]:
    # One agency's: requests it filed (and their decisions, court orders), disclosures it made.
    p = {"s": start, "e": end, "agency": agency}

    async def rows(sql: str) -> list[Any]:
        return list((await session.execute(text(sql), p)).all())

    filed = await rows(
        "SELECT r.id, v.case_number, v.legal_basis, v.reason, r.status, r.requester_agency, r.filed_at "
        "FROM access.requests r JOIN access.request_versions v ON v.request_id = r.id AND v.version = 1 "
        "WHERE r.filed_at >= :s AND r.filed_at < :e AND " + _OURS + " "
        "ORDER BY r.filed_at"
    )
    decisions = await rows(
        "SELECT d.request_id, d.decision, d.reason, d.decided_at, v.case_number FROM access.decisions d "
        "JOIN access.request_versions v ON v.request_id = d.request_id AND v.version = d.version "
        "JOIN access.requests r ON r.id = d.request_id "
        "WHERE d.decided_at >= :s AND d.decided_at < :e AND " + _OURS + " "
        "ORDER BY d.decided_at"
    )
    disclosures = await rows(
        "SELECT case_number, recipient_name, recipient_ori, legal_basis, purpose, record_count, disclosed_at "
        "FROM access.disclosures WHERE disclosed_at >= :s AND disclosed_at < :e AND agency = :agency "
        "ORDER BY disclosed_at"
    )
    court_orders = await rows(
        "SELECT v.request_id, v.case_number, v.filed_at, v.court_order_key IS NOT NULL FROM access.request_versions v "
        "JOIN access.requests r ON r.id = v.request_id WHERE v.legal_basis = 'court_order' AND v.filed_at >= :s "
        "AND v.filed_at < :e AND " + _OURS + " ORDER BY v.filed_at"
    )
    return {
        "requests_filed": len(filed),
        "requests_approved": sum(1 for d in decisions if d[1] == "approve"),
        "requests_denied": sum(1 for d in decisions if d[1] == "deny"),
        "requests": [
            {
                "request_id": str(r[0]),
                "case_number": r[1],
                "legal_basis": r[2],
                "reason": r[3],
                "status": r[4],
                "agency": r[5],
                "filed_at": r[6].isoformat(),
            }
            for r in filed
        ],
        "decisions": [
            {
                "request_id": str(d[0]),
                "decision": d[1],
                "reason": d[2],
                "decided_at": d[3].isoformat(),
                "case_number": d[4],
            }
            for d in decisions
        ],
        "disclosures": [
            {
                "case_number": x[0],
                "recipient": x[1],
                "recipient_ori": x[2],
                "legal_basis": x[3],
                "purpose": x[4],
                "records": x[5],
                "disclosed_at": x[6].isoformat(),
            }
            for x in disclosures
        ],
        "court_orders": [
            {"request_id": str(c[0]), "case_number": c[1], "filed_at": c[2].isoformat(), "order_on_file": c[3]}
            for c in court_orders
        ],
    }


async def audit_report(
    session: AsyncSession, figures: FiguresClient, start: datetime, end: datetime, *, agency: str
) -> dict[str, Any]:
    """One agency's biennial audit (`agency`, the custodian ORI). Holds, held data and the retention check are
    the agency's own; purge runs and the audit chain are the shared system's and appear in every agency's report."""
    hot = await figures.get("hotlist", "/v1/internal/report", start, end, agency=agency)
    usage = await log_of_use(figures, start, end, agency=agency, public=False, hot=hot)
    reads_ret = await figures.get("ingest", "/v1/internal/retention", start, end, agency=agency)
    chain = await verify_chain(session)
    reads_per_day: dict[str, int] = {}
    for u in usage["units"]:
        for d in u["days"]:
            reads_per_day[d["day"]] = reads_per_day.get(d["day"], 0) + d["reads"]
    return {
        "report": "biennial_audit",
        "statute": "Minn. Stat. 13.824 subd. 6",
        "agency": agency,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": datetime.now(UTC).isoformat(),
        "log_of_use": usage,
        "reads_per_day": dict(sorted(reads_per_day.items())),
        "access": await _access_figures(session, start, end, agency),
        "accesses_against_grants": await accesses_against_grants(session, start, end, agency),
        "exigency_searches": await exigency.searches(session, start, end, agency),
        # Subd. 6: how the period's data were classified (13.82: private unless active investigative or public).
        "classification": {
            "reads": usage["totals"]["classification"],
            "reads_total": usage["totals"]["reads"],
            "plates_read": usage["totals"]["plates_read"],
            "distinct_plates_by_day": usage["totals"]["distinct_plates_by_day"],
            "reads_no_plate": usage["totals"]["reads_no_plate"],
        },
        "hits": {
            "total": hot["hits_total"],
            "covert": hot.get("covert_hits_total", 0),
            "by_category": hot["hits_by_category"],
            "by_list": hot["hits_by_list"],
            "dispositions_by_outcome": hot["dispositions_by_outcome"],
            "with_disposition": hot["hits_with_disposition"],
            "minutes_to_disposition": hot["minutes_to_disposition"],
        },
        "retention": {
            "reads": {
                "purges": reads_ret["purges"],
                "holds_placed": reads_ret["holds_placed"],
                "holds_released": reads_ret["holds_released"],
                "holds_active": reads_ret["holds_active"],
                "reads_held": reads_ret["reads_held"],
                "check": reads_ret["check"],
            },
            "hits": {
                "purges": hot["purges"],
                "holds_placed": hot["holds_placed"],
                "holds_released": hot["holds_released"],
                "holds_active": hot["holds_active"],
                "hits_held": hot["hits_held"],
                "check": hot["check"],
            },
            "check_ok": bool(reads_ret["check"]["ok"] and hot["check"]["ok"]),
        },
        "audit_chain": {
            "entries": chain.entries,
            "ok": chain.ok,
            "first_broken_seq": chain.first_broken_seq,
            "reason": chain.reason,
        },
    }


SUMMARY_DAYS = 30  # subd. 6(c): the summary goes out within 30 days of the audit's completion
SUMMARY_RECIPIENTS = (
    "Commissioner of Administration",
    "Chairs and ranking minority members of the House and Senate committees with jurisdiction over data practices "
    "and public safety",
    "Legislative Commission on Data Practices and Personal Data Privacy",
)


def commissioner_summary(audit: dict[str, Any], *, completed_on: date) -> dict[str, Any]:
    """Subd. 6(c): the audit's findings in one page, with its recipients and the day it is due."""
    use = audit["log_of_use"]["totals"]
    acc = audit["access"]
    ret = audit["retention"]
    findings = {
        "plates read (reads with a plate)": use["plates_read"],
        "reads with no plate": use["reads_no_plate"],
        "hits": audit["hits"]["total"],
        "hits with a disposition": audit["hits"]["with_disposition"],
        "access requests filed / approved / denied": (
            f"{acc['requests_filed']} / {acc['requests_approved']} / {acc['requests_denied']}"
        ),
        "disclosures to other agencies": len(acc["disclosures"]),
        "court orders": len(acc["court_orders"]),
        "purges (reads) in the period": len(ret["reads"]["purges"]),
        "retention check": "passed" if ret["check_ok"] else "violations found",
        "holds active (reads)": ret["reads"]["holds_active"],
        "audit log hash chain": "intact" if audit["audit_chain"]["ok"] else "broken",
    }
    compliant = ret["check_ok"] and audit["audit_chain"]["ok"]
    return {
        "report": "commissioner_summary",
        "statute": "Minn. Stat. 13.824 subd. 6(c)",
        "agency": audit["agency"] or "(agency)",  # the agency whose figures these are
        "period": audit["period"],
        "generated_at": datetime.now(UTC).isoformat(),
        "completed_on": completed_on.isoformat(),
        "due_by": (completed_on + timedelta(days=SUMMARY_DAYS)).isoformat(),
        "recipients": list(SUMMARY_RECIPIENTS),
        "findings": findings,
        "hits_by_category": audit["hits"]["by_category"],
        "classification": audit["classification"]["reads"],
        "statement": (
            "The audit found the data collected, retained and destroyed as Minn. Stat. 13.824 requires."
            if compliant
            else "The audit found departures from Minn. Stat. 13.824 listed above; see the full audit report."
        ),
    }

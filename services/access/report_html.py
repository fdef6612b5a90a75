"""The biennial audit (services/access/reports.py) as printable HTML with inline SVG charts: no script, no external
file, prints as drawn."""

from __future__ import annotations

import html
from datetime import date, datetime, timedelta
from typing import Any

from services.access.reports import disclosure_table


def bar_chart(title: str, data: dict[str, int], *, width: int = 720, height: int = 220) -> str:
    """A bar chart as inline SVG: no script, no external file, prints as drawn."""
    e = html.escape
    if not data:
        return f'<figure><figcaption>{e(title)}</figcaption><p class="none">No data in the period.</p></figure>'
    top = max(data.values()) or 1
    n = len(data)
    pad_l, pad_b, pad_t = 48, 40, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    bw = plot_w / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{e(title)}" viewBox="0 0 {width} {height}">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" stroke="#333"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 8}" text-anchor="end" font-size="10">{top}</text>',
        f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end" font-size="10">0</text>',
    ]
    label_every = max(1, n // 12)
    for i, (label, value) in enumerate(data.items()):
        h = plot_h * value / top
        x = pad_l + i * bw
        parts.append(
            f'<rect x="{x + bw * 0.1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bw * 0.8, 1):.1f}" '
            f'height="{h:.1f}" fill="#3a6ea5"><title>{e(label)}: {value}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{pad_t + plot_h + 14}" text-anchor="middle" font-size="10">'
                f"{e(label)}</text>"
            )
    parts.append("</svg>")
    return f"<figure><figcaption>{e(title)}</figcaption>{''.join(parts)}</figure>"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    if not rows:
        return '<p class="none">None in the period.</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def audit_html(report: dict[str, Any]) -> str:
    e = html.escape
    period = report["period"]
    use = report["log_of_use"]
    acc = report["access"]
    hits = report["hits"]
    ret = report["retention"]
    chain = report["audit_chain"]
    days = _fill_days(report["reads_per_day"], period["start"], period["end"])
    sections = [
        f"<h1>ALPR biennial audit</h1><p>Minn. Stat. 13.824 subd. 6. Period {e(period['start'])} to "
        f"{e(period['end'])}. Generated {e(report['generated_at'])}.</p>",
        "<h2>Log of use</h2>",
        bar_chart("Plates read per day", days),
        _table(
            ["unit", "active hours", "active intervals", "plates read", "hits"],
            [[u["unit"], u["active_hours"], len(u["active_intervals"]), u["reads"], u["hits"]] for u in use["units"]],
        ),
        "<h3>Databases compared</h3>",
        _table(
            ["BCA hot-list version", "loaded", "entries"],
            [[v["version"], v["loaded_at"], v["entries"]] for v in use["databases_compared"]["bca_hot_list_versions"]],
        ),
        _table(
            ["agency list", "entries in force"],
            [[x["name"], x["entries_in_force"]] for x in use["databases_compared"]["agency_lists"]],
        ),
        "<h2>Access requests</h2>",
        f"<p>Filed {acc['requests_filed']}, approved {acc['requests_approved']}, denied {acc['requests_denied']}.</p>",
        _table(
            ["request", "case number", "legal basis", "reason", "status", "filed"],
            [
                [r["request_id"][:8], r["case_number"], r["legal_basis"], r["reason"], r["status"], r["filed_at"]]
                for r in acc["requests"]
            ],
        ),
        _table(
            ["request", "case number", "decision", "reason", "decided"],
            [
                [d["request_id"][:8], d["case_number"], d["decision"], d["reason"], d["decided_at"]]
                for d in acc["decisions"]
            ],
        ),
        "<h3>Disclosures to other agencies</h3>",
        _table(*disclosure_table(acc)),
        "<h3>Court orders</h3>",
        _table(
            ["request", "case number", "filed", "order on file"],
            [[c["request_id"][:8], c["case_number"], c["filed_at"], c["order_on_file"]] for c in acc["court_orders"]],
        ),
        "<h2>Hits and dispositions</h2>",
        bar_chart("Hits per category", hits["by_category"]),
        _table(["outcome", "hits"], [[k, v] for k, v in sorted(hits["dispositions_by_outcome"].items())]),
        f"<p>Hits {hits['total']}, with a disposition {hits['with_disposition']}; minutes to disposition: "
        f"median {hits['minutes_to_disposition']['p50']}, 90th percentile {hits['minutes_to_disposition']['p90']}."
        "</p>",
        "<h2>Retention</h2>",
        f"<p>Retention check: <strong>{'passed' if ret['check_ok'] else 'VIOLATIONS FOUND'}</strong> "
        f"(reads overdue {ret['reads']['check']['reads_overdue']}, objects overdue "
        f"{ret['reads']['check']['objects_overdue']}, hits overdue {ret['hits']['check']['hits_overdue']}).</p>",
        _table(
            ["purge (reads)", "trigger", "status", "reads destroyed", "objects destroyed", "kept under hold"],
            [
                [
                    p["started_at"],
                    p["trigger"],
                    p["status"],
                    p["reads_destroyed"],
                    p["objects_destroyed"],
                    p["reads_kept_held"],
                ]
                for p in ret["reads"]["purges"]
            ],
        ),
        _table(
            ["purge (hits)", "trigger", "status", "hits destroyed", "kept under hold"],
            [
                [p["started_at"], p["trigger"], p["status"], p["hits_destroyed"], p["hits_kept_held"]]
                for p in ret["hits"]["purges"]
            ],
        ),
        f"<p>Holds on reads: placed {ret['reads']['holds_placed']}, released {ret['reads']['holds_released']}, "
        f"active {ret['reads']['holds_active']} ({ret['reads']['reads_held']} reads). Holds on hits: placed "
        f"{ret['hits']['holds_placed']}, released {ret['hits']['holds_released']}, active "
        f"{ret['hits']['holds_active']}.</p>",
        "<h2>Audit log</h2>",
        f"<p>Hash chain over {chain['entries']} entries: <strong>{'intact' if chain['ok'] else 'BROKEN'}</strong>"
        + (f" (first broken entry {chain['first_broken_seq']}: {e(chain['reason'] or '')})" if not chain["ok"] else "")
        + ".</p>",
    ]
    style = (
        "body{font-family:sans-serif;font-size:11pt;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #999;padding:2px 6px;font-size:9pt}figure{margin:1em 0}"
        "figcaption{font-weight:bold}.none{color:#666}@media print{h2{page-break-before:auto}}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>ALPR biennial audit</title>'
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )


def _fill_days(per_day: dict[str, int], start: str, end: str) -> dict[str, int]:
    """Every day of the period, zero where no plate was read (a gap in the chart is a finding)."""
    s, e = datetime.fromisoformat(start).date(), datetime.fromisoformat(end).date()
    if (e - s).days > 800:
        return per_day
    out: dict[str, int] = {}
    d: date = s
    while d < e:
        out[d.isoformat()] = per_day.get(d.isoformat(), 0)
        d += timedelta(days=1)
    return out

"""The statutory reports as PDF documents, drawn with ReportLab (tables and bar charts, no browser): the biennial
audit (13.824 subd. 6), the log of use (subd. 5), the summary to the commissioner (subd. 6(c)) and the notice
letter to the BCA (subd. 8). Each builder takes the report's JSON (the one the API serves) and returns the bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.access.reports import disclosure_table

CHUNK_ROWS = 500  # a longer table is several tables, each with the header (a document of record holds every row)
_STYLES = getSampleStyleSheet()
_CELL = ParagraphStyle("cell", parent=_STYLES["BodyText"], fontSize=7.5, leading=9)
_BODY = _STYLES["BodyText"]


def _p(text: Any, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)), style)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Flowable]:
    if not rows:
        return [_p("None in the period.")]
    out: list[Flowable] = []
    style = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e9f0")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
    )
    # Chunks keep reportlab's table layout (quadratic in a table's rows when it splits pages) fast.
    for i in range(0, len(rows), CHUNK_ROWS):
        data = [[_p(h, _CELL) for h in headers]] + [[_p(c, _CELL) for c in r] for r in rows[i : i + CHUNK_ROWS]]
        t = Table(data, repeatRows=1, hAlign="LEFT")
        t.setStyle(style)
        out.append(t)
    return out


def bar_chart(title: str, data: dict[str, int], *, width: float = 6.5 * inch, height: float = 2.2 * inch) -> Flowable:
    """A bar chart, labelled every nth bar so the axis stays legible."""
    if not data:
        return _p(f"{title}: no data in the period.")
    d = Drawing(width, height + 18)
    d.add(String(0, height + 6, title, fontName="Helvetica-Bold", fontSize=9))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 24, width - 50, height - 30
    chart.data = [list(data.values())]
    labels = list(data)
    every = max(1, len(labels) // 12)
    chart.categoryAxis.categoryNames = [lab if i % every == 0 else "" for i, lab in enumerate(labels)]
    chart.categoryAxis.labels.fontSize = 6
    chart.categoryAxis.labels.angle = 30
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 6
    chart.bars[0].fillColor = colors.HexColor("#3a6ea5")
    chart.bars[0].strokeColor = None
    d.add(chart)
    return d


def _render(title: str, story: list[Flowable]) -> bytes:
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=LETTER,
        title=title,
        author="ALPR back office",
        leftMargin=0.75 * inch,
        rightMargin=0.75 * inch,
        topMargin=0.75 * inch,
        bottomMargin=0.75 * inch,
    )

    def footer(canvas: Any, doc_: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(0.75 * inch, 0.5 * inch, f"{title} - page {doc_.page}")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def _h1(text: str) -> Paragraph:
    return _p(text, _STYLES["Title"])


def _h2(text: str) -> Paragraph:
    return _p(text, _STYLES["Heading2"])


def _period(report: dict[str, Any]) -> str:
    p = report["period"]
    return f"Period {p['start']} to {p['end']} (end excluded). Generated {report['generated_at']}."


def _by_month(per_day: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for day, n in per_day.items():
        out[day[:7]] = out.get(day[:7], 0) + n
    return out


def _counts(title: str, counts: dict[str, int]) -> list[Flowable]:
    return [_p(title, _STYLES["Heading4"]), *_table(["", "count"], [[k, v] for k, v in sorted(counts.items())])]


def _log_of_use_story(use: dict[str, Any]) -> list[Flowable]:
    t = use["totals"]
    story: list[Flowable] = [
        _p(
            f"Reads {t['reads']} (with a plate {t.get('plates_read', t['reads'])}, no plate "
            f"{t.get('reads_no_plate', 0)}; distinct plates summed by day {t.get('distinct_plates_by_day', 0)}). "
            f"Hits {t['hits']}. Active hours {t['active_hours']} over {t['units']} units."
        ),
        *_table(
            ["unit", "active hours", "intervals", "reads", "plates read", "distinct (by day)", "no plate", "hits"],
            [
                [
                    u["unit"],
                    u["active_hours"],
                    len(u["active_intervals"]),
                    u["reads"],
                    u.get("plates_read", u["reads"]),
                    u.get("distinct_plates", ""),
                    u.get("reads_no_plate", ""),
                    u["hits"],
                ]
                for u in use["units"]
            ],
        ),
        *_counts("Hits by category (subd. 5(a)(3))", t.get("hits_by_category", {})),
        *_counts("Hits by list", t.get("hits_by_list", {})),
        _p("Fixed readers", _STYLES["Heading4"]),
        *_table(
            ["reader", "locations", "active hours", "reads"],
            [
                [
                    r["reader"],
                    "; ".join(f"{x['lat']:.5f},{x['lon']:.5f} from {x['placed_on']}" for x in r["locations"]),
                    r["active_hours"],
                    r["reads"],
                ]
                for r in use["fixed_readers"]
            ],
        ),
        _p("Databases compared", _STYLES["Heading4"]),
        *_table(
            ["BCA hot-list version", "loaded", "entries"],
            [[v["version"], v["loaded_at"], v["entries"]] for v in use["databases_compared"]["bca_hot_list_versions"]],
        ),
        *_table(
            ["agency list", "entries in force"],
            [[x["name"], x["entries_in_force"]] for x in use["databases_compared"]["agency_lists"]],
        ),
    ]
    return story


def log_of_use_pdf(use: dict[str, Any]) -> bytes:
    title = "ALPR log of use" + (" (public version)" if use["public"] else "")
    per_day: dict[str, int] = {}
    rows = []
    for u in use["units"]:
        for d in u["days"]:
            per_day[d["day"]] = per_day.get(d["day"], 0) + d["reads"]
            cats = ", ".join(f"{k} {v}" for k, v in sorted(d.get("hits_by_category", {}).items()))
            rows.append([u["unit"], d["day"], d["reads"], d.get("distinct_plates", ""), d["hits"], cats])
    chart = per_day if len(per_day) <= 92 else _by_month(per_day)
    story: list[Flowable] = [
        _h1(title),
        _p(f"Minn. Stat. 13.824 subd. 5. {_period(use)}"),
        bar_chart("Reads per day" if chart is per_day else "Reads per month", dict(sorted(chart.items()))),
        *_log_of_use_story(use),
        _h2("Per unit and day"),
        *_table(["unit", "day", "reads", "distinct plates", "hits", "hits by category"], rows),
    ]
    return _render(title, story)


def audit_pdf(report: dict[str, Any]) -> bytes:
    title = "ALPR biennial audit"
    use = report["log_of_use"]
    acc = report["access"]
    hits = report["hits"]
    ret = report["retention"]
    chain = report["audit_chain"]
    cls = report.get("classification", {})
    per_day = report["reads_per_day"]
    chart = per_day if len(per_day) <= 92 else _by_month(per_day)
    story: list[Flowable] = [
        _h1(title),
        _p(f"Minn. Stat. 13.824 subd. 6. {_period(report)}"),
        _h2("Data collected and their classification"),
        bar_chart("Reads per day" if chart is per_day else "Reads per month", dict(sorted(chart.items()))),
        _p(
            f"Reads {cls.get('reads_total', '')}; with a plate {cls.get('plates_read', '')}; no plate "
            f"{cls.get('reads_no_plate', '')}. ALPR data are private (13.824 subd. 2(b)) unless active criminal "
            "investigative data (a case hold) or public."
        ),
        *_counts("Reads by classification", cls.get("reads", {})),
        _h2("Log of use"),
        *_log_of_use_story(use),
        _h2("Hits and dispositions"),
        bar_chart("Hits by category", hits["by_category"]),
        _p(
            f"Hits {hits['total']} (on covert lists {hits.get('covert', 0)}); with a disposition "
            f"{hits['with_disposition']}."
        ),
        *_counts("Dispositions by outcome", hits["dispositions_by_outcome"]),
        _h2("Access requests and disclosures"),
        _p(f"Filed {acc['requests_filed']}, approved {acc['requests_approved']}, denied {acc['requests_denied']}."),
        *_table(
            ["case number", "legal basis", "reason", "status", "filed"],
            [[r["case_number"], r["legal_basis"], r["reason"], r["status"], r["filed_at"]] for r in acc["requests"]],
        ),
        _p("Disclosures to other agencies", _STYLES["Heading4"]),
        *_table(*disclosure_table(acc)),
        _p("Court orders", _STYLES["Heading4"]),
        *_table(
            ["case number", "filed", "order on file"],
            [[c["case_number"], c["filed_at"], c["order_on_file"]] for c in acc["court_orders"]],
        ),
        _h2("Retention"),
        _p(
            f"Retention check: {'passed' if ret['check_ok'] else 'VIOLATIONS FOUND'} (reads overdue "
            f"{ret['reads']['check']['reads_overdue']}, objects overdue {ret['reads']['check']['objects_overdue']}, "
            f"hits overdue {ret['hits']['check']['hits_overdue']}). Holds on reads: placed "
            f"{ret['reads']['holds_placed']}, released {ret['reads']['holds_released']}, active "
            f"{ret['reads']['holds_active']}."
        ),
        *_table(
            ["purge (reads)", "trigger", "status", "reads destroyed", "objects destroyed", "kept (held)"],
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
        _h2("Audit log"),
        _p(
            f"Hash chain over {chain['entries']} entries: {'intact' if chain['ok'] else 'BROKEN'}"
            + ("" if chain["ok"] else f" (first broken entry {chain['first_broken_seq']}: {chain['reason']})")
            + "."
        ),
    ]
    return _render(title, story)


def commissioner_summary_pdf(summary: dict[str, Any]) -> bytes:
    title = "ALPR audit summary (Minn. Stat. 13.824 subd. 6(c))"
    story: list[Flowable] = [
        _h1("Summary of the ALPR biennial audit"),
        _p(
            f"Minn. Stat. 13.824 subd. 6(c). Agency {summary['agency']}. Audit period {summary['period']['start']} to "
            f"{summary['period']['end']}; audit completed {summary['completed_on']}; this summary is due by "
            f"{summary['due_by']}."
        ),
        _h2("Recipients"),
        *[_p(f"- {r}") for r in summary["recipients"]],
        _h2("Findings"),
        *_table(["finding", "value"], [[k, v] for k, v in summary["findings"].items()]),
        *_counts("Hits by category", summary["hits_by_category"]),
        *_counts("Reads by classification", summary["classification"]),
        Spacer(1, 12),
        _p(summary["statement"]),
    ]
    return _render(title, story)


def bca_letter_pdf(letter: dict[str, Any]) -> bytes:
    title = "Notice to the BCA (Minn. Stat. 13.824 subd. 8)"
    story: list[Flowable] = [
        _p(letter["date"]),
        Spacer(1, 12),
        _p(letter["to"]),
        Spacer(1, 12),
        _p(f"Re: {title}", _STYLES["Heading3"]),
        _p(letter["body"]),
        *_table(
            ["event", "reader", "kind", "on", "location"],
            [
                [
                    i["event"].replace("_", " "),
                    i["reader"],
                    i["kind"],
                    i["on"],
                    f"{i['lat']:.5f}, {i['lon']:.5f}" if i.get("lat") is not None else "",
                ]
                for i in letter["items"]
            ],
        ),
        Spacer(1, 18),
        _p(f"{letter['from']}"),
    ]
    return _render(title, story)

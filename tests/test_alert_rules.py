"""The sample Prometheus alert rules (docker/prometheus-alerts.yml) as a rule checker would see them: each rule's
PromQL parses (promql-parser, the parser of Prometheus' grammar), counters' functions (`rate`, `increase`) are applied
to counters only and gauges' (`delta`, `deriv`) to gauges only, by the metric types the services' own /metrics
declare; and a single failed sync of a list older than its schedule alerts."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from shared.settings import Settings
from tests.ingest.conftest import ingest_settings
from tests.support.apps import running

ROOT = Path(__file__).resolve().parents[1]
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCTIONS = {"delta", "idelta", "deriv", "predict_linear", "holt_winters", "double_exponential_smoothing"}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "docker" / "prometheus-alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


async def _metric_types(settings: Settings) -> tuple[dict[str, str], str]:
    """Each series name the services' /metrics can show, with its family's type (`# TYPE`), and hotlist's page."""
    types: dict[str, str] = {}
    hotlist_page = ""
    for service in ("access", "ingest", "recognition", "hotlist"):
        if service == "ingest":
            own = ingest_settings(settings)
        else:
            own = settings.model_copy(update={"hotlist_sync_scheduled": False, "recognition_workers": 1})
        app = importlib.import_module(f"services.{service}.main").create_app(own)
        async with running(app) as client:
            page = await client.get("/metrics")
            assert page.status_code == 200, (service, page.text[:200])
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", page.text, flags=re.M):
            suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}
            for suffix in suffixes.get(kind, ("",)):
                types[name + suffix if not name.endswith(suffix) else name] = kind
        if service == "hotlist":
            hotlist_page = page.text
    return types, hotlist_page


def _calls(expr: Any) -> list[tuple[str, list[str]]]:
    """(function, the metrics of its range-vector arguments) for every call in the expression."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.Call):
            metrics = [a.vector_selector.name for a in node.args if isinstance(a, promql_parser.MatrixSelector)]
            found.append((node.func.name, metrics))

    promql_parser.walk(expr, visit)
    return found


async def test_alert_rules_parse_and_apply_counter_functions_to_counters_only(settings: Settings) -> None:
    rules = _rules()
    types, hotlist_page = await _metric_types(settings)
    wrong = []
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["annotations"]["summary"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
        expr = promql_parser.parse(rule["expr"])  # raises on a rule Prometheus would refuse to load
        for selector in re.findall(r"\balpr_[a-z_]+", rule["expr"]):
            assert selector in types, f"{rule['alert']}: {selector} is on no service's /metrics"
        for func, metrics in _calls(expr):
            for metric in metrics:
                kind = types.get(metric)
                if func in COUNTER_FUNCTIONS and kind not in ("counter", "histogram"):
                    wrong.append(f"{rule['alert']}: {func}({metric}) on a {kind}")
                if func in GAUGE_FUNCTIONS and kind != "gauge":
                    wrong.append(f"{rule['alert']}: {func}({metric}) on a {kind}")
    assert wrong == []
    # The schedule the overdue rule compares the list's age with is on hotlist's page, as configured.
    interval = re.search(r"^alpr_hotlist_sync_interval_seconds (\S+)$", hotlist_page, flags=re.M)
    assert interval is not None and float(interval.group(1)) == settings.hotlist_sync_interval_s


def test_the_first_failed_sync_of_an_overdue_list_alerts() -> None:
    """Not three failures in a row (AlprHotlistSyncFailing): one, when the list in force is older than its
    schedule."""
    overdue = [
        rule
        for rule in _rules()
        if "alpr_hotlist_sync_failures_in_row" in rule["expr"] and "alpr_hotlist_sync_interval_seconds" in rule["expr"]
    ]
    assert len(overdue) == 1
    expr = promql_parser.parse(overdue[0]["expr"])
    assert isinstance(expr, promql_parser.BinaryExpr) and str(expr.op).lower().endswith("and")
    failures, age = expr.lhs, expr.rhs
    assert (
        failures.lhs.name == "alpr_hotlist_sync_failures_in_row" and failures.rhs.val == 1 and ">=" in str(failures.op)
    )
    assert age.lhs.name == "alpr_hotlist_age_seconds" and age.rhs.name == "alpr_hotlist_sync_interval_seconds"
    assert "for" not in overdue[0] or promql_parser.parse_duration(overdue[0]["for"]).total_seconds() <= 60

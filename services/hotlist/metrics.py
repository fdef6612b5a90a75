"""Hotlist's Prometheus figures (served at /metrics by shared.metrics): hits by category, the list in force and its
age, BCA sync attempts and failures in a row. Covert lists' hits are not counted (their owner alone may know)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

HITS = Counter("alpr_hotlist_hits_total", "New hits by category (covert lists' hits left out)", ["category"])
SYNCS = Counter(
    "alpr_hotlist_syncs_total",
    "BCA sync attempts by outcome (loaded, unchanged, failed, rejected, incomplete)",
    ["outcome"],
)
VERSION = Gauge("alpr_hotlist_version", "The BCA list version this worker matches against (0: none loaded)")
ENTRIES = Gauge("alpr_hotlist_entries", "Entries in the BCA list version in force")
AGE = Gauge("alpr_hotlist_age_seconds", "Seconds since the source last confirmed the list in force (-1: none loaded)")
SYNC_FAILURES_IN_ROW = Gauge(
    "alpr_hotlist_sync_failures_in_row", "BCA sync attempts in a row that failed or were refused"
)
# The schedule beside the list's age, so that an alert rule can tell a list older than its schedule (one failed sync
# of an hourly list is already an hour without the BCA's updates) without the rule repeating the setting.
SYNC_INTERVAL = Gauge(
    "alpr_hotlist_sync_interval_seconds", "ALPR_HOTLIST_SYNC_INTERVAL_S: how often the BCA list is synced"
)
SYNC_INCOMPLETE = Gauge(
    "alpr_hotlist_sync_incomplete",
    "1 when the latest BCA sync attempt was refused as incomplete (cut off, or far shorter than the list in force)",
)


def count_new_hits(hits: list[dict[str, Any]], stored: set[Any]) -> None:
    for hit in hits:
        if hit["id"] in stored and not hit.get("covert"):
            HITS.labels(hit["category"]).inc()

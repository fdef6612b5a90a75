"""Requests refused for failed authentication, counted (prometheus_client's default registry, served at /metrics):
a flood of bad tokens or links is a figure to watch, not thousands of rows under the audit chain's lock."""

from __future__ import annotations

from prometheus_client import Counter

AUTH_FAILURES = Counter(
    "alpr_auth_failures_total",
    "Requests refused because authentication failed (bad or revoked token, bad link signature, throttled login)",
    ["service", "reason"],
)

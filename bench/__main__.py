"""Run every benchmark and print one JSON object. `python -m bench [name ...]` runs a subset."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from bench import (
    access,
    agents,
    archive,
    facts,
    floods,
    hotlist,
    ingest,
    match_call,
    readyz,
    recognition,
    replicas,
    retention,
    wrk,
)

BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "readyz": readyz.run,
    "access": access.run,
    "archive_search": archive.run,
    "ingest": ingest.run,
    "agents": agents.run,
    "hotlist": hotlist.run,
    "recognition": recognition.run,
    "retention": retention.run,
    "facts": facts.run,
    "http_wrk": wrk.run,
    "floods": floods.run,
    "replicas": replicas.run,
    "match_call": match_call.run,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        print(json.dumps({"error": f"unknown benchmarks: {sorted(unknown)}"}))
        return 2
    results: dict[str, Any] = {}
    for name in chosen:
        try:
            results[name] = BENCHMARKS[name]()
        except Exception as exc:  # noqa: BLE001 - one failing benchmark is reported, the rest still run
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

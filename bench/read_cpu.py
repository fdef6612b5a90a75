"""Ingest's CPU per read, in process (ASGI straight into the app, no HTTP, no photo, recognition and hotlist off):
`python -m bench.read_cpu [rounds] [reads]`. Prints each round's CPU ms per read and their median. A before/after
figure for a change of the read path on a shared machine: compare medians taken back to back."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import database
from bench.ingest import _in_process
from shared.keys import ensure_signing_key


def main(rounds: int = 5, reads: int = 2000) -> dict[str, object]:
    with database() as url, tempfile.TemporaryDirectory() as tmp:
        keys_dir = Path(tmp) / "keys"
        ensure_signing_key(keys_dir, "ES256")
        env = {
            "ALPR_DATABASE_URL": url,
            "ALPR_DATA_DIR": str(Path(tmp) / "data"),
            "ALPR_JWT_KEYS_DIR": str(keys_dir),
            "ALPR_INGEST_CALL_RECOGNITION": "false",
            "ALPR_INGEST_CALL_HOTLIST": "false",
            "ALPR_DB_POOL_SIZE": "8",
        }
        asyncio.run(_in_process(env, keys_dir, None, reads=300, concurrency=48))  # warm-up
        per_read = [
            asyncio.run(_in_process(env, keys_dir, None, reads=reads, concurrency=48))["cpu_ms_per_read"]
            for _ in range(rounds)
        ]
    return {"rounds_cpu_ms_per_read": per_read, "median_cpu_ms_per_read": statistics.median(per_read)}


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))

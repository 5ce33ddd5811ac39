"""Benchmark: backfill 1,000,000 simulated events into a fresh SQLite file.

Writes the time and events/s to bench/results/backfill.json. Not part of ``make test``:
run ``.venv/bin/python bench/backfill.py [EVENTS]``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from herald.simulate import World
from herald.simulate.backfill import backfill
from herald.store import open_store

EVENTS = 1_000_000
DEVICES = 2_000
ORGANISATIONS = 10
DAYS = 30
RESULTS = Path(__file__).parent / "results" / "backfill.json"


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else EVENTS
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        store = open_store(url, sqlite_synchronous="FULL")
        started = time.perf_counter()
        written = backfill(store, World(ORGANISATIONS, DEVICES, seed=1), DAYS, limit=events)
        seconds = time.perf_counter() - started
        store.close()
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    result = {
        "benchmark": "backfill",
        "events": written,
        "devices": DEVICES,
        "organisations": ORGANISATIONS,
        "days": DAYS,
        "seconds": round(seconds, 1),
        "events_per_second": round(written / seconds),
        "database_bytes": size,
        "store": "sqlite (synchronous FULL, batches of 5000)",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.system()}",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()

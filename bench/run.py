"""Run every benchmark: ``python -m bench.run [--quick] [--only FAMILY,...]`` (``FAMILIES``).

Writes ``bench/results.json`` and the results table of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import delivery, devices, ingest, query, querystore, report, sinks
from bench.common import FULL, QUICK, ROOT, machine

FAMILIES = ("ingest", "query", "delivery", "devices", "sinks")


def _say(text: str) -> None:
    print(f"[bench] {text}", flush=True)  # noqa: T201


def _kept(mode: str, families: list[str]) -> dict[str, Any]:
    """The families this run skips, from the last results of the same mode (with --only)."""
    path = ROOT / "results.json"
    if not path.exists():
        return {}
    last = orjson.loads(path.read_bytes())
    if last.get("mode") != mode:
        return {}
    return {name: last[name] for name in FAMILIES if name not in families and name in last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about two minutes, a 1M store")
    parser.add_argument("--only", default=",".join(FAMILIES), help="families to run")
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    families = [name.strip() for name in args.only.split(",")]
    results: dict[str, Any] = {
        "mode": mode.name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }
    results.update(_kept(mode.name, families))
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    try:
        if "ingest" in families:
            _say("ingest: store vs raw sqlite3")
            store = ingest.store_ingest(mode, workdir)
            _say(f"  {store}")
            _say("ingest: HTTP")
            http = ingest.http_ingest(mode, workdir, store["raw_sqlite_events_per_s"])
            _say(f"  {http}")
            results["ingest"] = {"store": store, "http": http}
        if "query" in families:
            _say(f"query: the {mode.query_events:,}-event store (built once into bench/scratch)")
            built = querystore.query_store(mode.query_events)
            results["query"] = query.query_bench(mode, built, workdir)
            _say(f"  {results['query']}")
        if "devices" in families:
            _say("devices: the projector's cost to HTTP ingest; state lookups on the query store")
            built = querystore.query_store(mode.query_events)
            results["devices"] = devices.devices_bench(mode, built, workdir)
            _say(f"  {results['devices']}")
        if "delivery" in families:
            _say("delivery: webhook throughput and latency")
            results["delivery"] = delivery.delivery_bench(mode, workdir)
            _say(f"  {results['delivery']}")
        if "sinks" in families:
            _say("sinks: MQTT, NATS JetStream, AMQP and S3 beside raw clients; latency at 1,000/s")
            results["sinks"] = sinks.sinks_bench(mode, workdir)
            _say(f"  {results['sinks']}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name in families:
        if name in results:
            results[name]["measured"] = results["date"]
    results["targets"] = report.targets(results)
    (ROOT / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    report.update_markdown(ROOT.parent / "BENCHMARKS.md", results)
    _say("wrote bench/results.json and BENCHMARKS.md")
    print(report.table(results))  # noqa: T201


if __name__ == "__main__":
    main()

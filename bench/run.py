"""Run every benchmark: ``python -m bench.run [--quick] [--only FAMILY,...]`` (``FAMILIES``).

Writes ``bench/results.json`` and the results table of ``BENCHMARKS.md``. The families
this run measures are stamped with its date and commit; with ``--only``, the others are
kept from the last run of the same mode under ``earlier``, each with the date and commit of
the run that measured it, and rendered in tables of their own.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import (
    delivery,
    devices,
    growth,
    ingest,
    neighbour,
    query,
    querystore,
    report,
    rules,
    sinks,
)
from bench.common import FULL, QUICK, ROOT, machine

FAMILIES = ("ingest", "query", "delivery", "devices", "rules", "sinks")


def _say(text: str) -> None:
    print(f"[bench] {text}", flush=True)  # noqa: T201


def _kept(path: Path, mode: str, families: list[str]) -> dict[str, Any]:
    """The families this run skips, as the last results of the same mode hold them (its own
    or kept from before), each stamped with the date and commit of the run that measured it."""
    if not path.exists():
        return {}
    last = orjson.loads(path.read_bytes())
    if last.get("mode") != mode:
        return {}
    found: dict[str, Any] = dict(last.get("earlier") or {})
    commit = (last.get("machine") or {}).get("commit", "unknown")
    for name in FAMILIES:
        if isinstance(last.get(name), dict):
            family = dict(last[name])
            family.setdefault("measured", last["date"])
            # results from before families carried their commit: the run's, if it measured it
            family.setdefault("commit", commit if family["measured"] == last["date"] else None)
            found[name] = family
    return {name: found[name] for name in FAMILIES if name not in families and name in found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="about two minutes, a 1M store")
    parser.add_argument("--only", default=",".join(FAMILIES), help="families to run")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "results.json",
        help="the results file: read for the families --only keeps, then written",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=ROOT.parent / "BENCHMARKS.md",
        help="the file whose results section (between the bench:results markers) is written",
    )
    args = parser.parse_args()
    mode = QUICK if args.quick else FULL
    families = [name.strip() for name in args.only.split(",")]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    results: dict[str, Any] = {
        "mode": mode.name,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
    }
    kept = _kept(args.results, mode.name, families)
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    try:
        if "ingest" in families:
            _say("ingest: store vs raw sqlite3")
            store = ingest.store_ingest(mode, workdir)
            _say(f"  {store}")
            _say("ingest: HTTP")
            raw_rates = {
                "herald_table": store["raw_sqlite_events_per_s"],
                "plain_table": store["raw_plain_events_per_s"],
            }
            http = ingest.http_ingest(mode, workdir, raw_rates)
            _say(f"  {http}")
            _say("ingest: a neighbour's reads while one tenant writes at its event budget")
            http["neighbour_at_budget"] = neighbour.neighbour_at_budget(workdir, mode.quick)
            _say(f"  {http['neighbour_at_budget']}")
            results["ingest"] = {"store": store, "http": http}
        if "query" in families:
            _say(f"query: the {mode.query_events:,}-event store (built once into bench/scratch)")
            built = querystore.query_store(mode.query_events)
            results["query"] = query.query_bench(mode, built, workdir)
            _say(f"  {results['query']}")
            _say("query: ingest into a copy of that store vs into an empty one")
            results["query"]["ingest_at_size"] = growth.ingest_at_size(mode, built, workdir)
            _say(f"  {results['query']['ingest_at_size']}")
        if "devices" in families:
            _say("devices: the projector's cost to HTTP ingest; state lookups on the query store")
            built = querystore.query_store(mode.query_events)
            results["devices"] = devices.devices_bench(mode, built, workdir)
            _say(f"  {results['devices']}")
        if "rules" in families:
            _say("rules: evaluating 100 rules vs appending the events they see")
            results["rules"] = rules.rules_bench(mode, workdir / "rules", results.get("ingest"))
            _say(f"  {results['rules']}")
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
            results[name]["commit"] = results["machine"]["commit"]
    results["targets"] = report.targets(results)  # this run's families only
    if kept:
        results["earlier"] = kept
    args.results.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    report.update_markdown(args.markdown, results)
    _say(f"wrote {args.results} and {args.markdown}")
    print(report.table(results))  # noqa: T201


if __name__ == "__main__":
    main()

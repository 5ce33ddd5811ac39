"""The benchmark table: each table one run of one commit (issue 36), no figure of another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from bench import report, run

MACHINE = {
    "cpu": "test cpu",
    "cores": 2,
    "memory_mb": 1024,
    "python": "3.11",
    "sqlite": "3.40",
    "os": "Linux",
    "commit": "new1234",
}


def _ingest(store_ratio: float, **stamp: str) -> dict[str, Any]:
    http = {"clients": 2, "events_per_s": 5000.0, "ratio_to_raw_sqlite": 0.5}
    return {
        "store": {
            "batch": 1000,
            "herald_events_per_s": 9000.0 * store_ratio,
            "raw_sqlite_events_per_s": 9000.0,
            "ratio": store_ratio,
            "raw_sqlite_without_indexes_events_per_s": 80000.0,
        },
        "http": {
            "batch": {**http, "posting_events_per_s": 6000.0, "lag_after_last_post_s": 2.5},
            "single": {**http, "clients": 16, "events_per_s": 500.0},
        },
        **stamp,
    }


def _query(**stamp: str) -> dict[str, Any]:
    figure = {
        "herald": {"p50_ms": 12.0, "p99_ms": 16.0},
        "raw_sqlite": {"p50_ms": 3.2, "p99_ms": 4.0},
        "ratio_p50": 3.75,
        "raw_does": "sqlite3 on the same hourly rollup",
        "raw_sqlite_events_scan": {"p50_ms": 318.0, "p99_ms": 350.0},
    }
    return {
        "store_events": 1_000_000,
        "count_30d_by_type_per_day": figure,
        "disk_bytes_per_event": 572.5,
        "server_peak_rss_mb": 98.0,
        **stamp,
    }


def _this_run() -> dict[str, Any]:
    """A run of the query family only, with ingest kept from an earlier run."""
    results: dict[str, Any] = {
        "mode": "full",
        "date": "2026-12-07 05:00 UTC",
        "machine": MACHINE,
        "query": _query(measured="2026-12-07 05:00 UTC", commit="new1234"),
    }
    results["targets"] = report.targets(results)
    results["earlier"] = {
        "ingest": _ingest(0.9, measured="2026-11-29 17:21 UTC", commit="old5678"),
    }
    return results


def test_this_runs_table_holds_only_the_families_it_measured() -> None:
    text = report.table(_this_run())
    ours, _ = text.split("**Earlier runs.**")

    assert ours.startswith("Run: **full** on 2026-12-07 05:00 UTC · commit `new1234`")
    assert "30-day count by type per day" in ours
    assert "ingest" not in ours.lower()  # neither its rows nor its targets
    assert "0.9" not in ours


def test_a_kept_family_has_a_table_of_its_own_with_its_date_and_commit() -> None:
    earlier = report.table(_this_run()).split("**Earlier runs.**")[1]

    run_lines = [line for line in earlier.splitlines() if line.startswith("Run:")]
    assert run_lines == [
        "Run: **full** on 2026-11-29 17:21 UTC · commit `old5678` · families: ingest"
    ]
    assert "| Store ingest vs raw sqlite | >= 0.5 | 0.9 | yes |" in earlier
    assert "30-day count" not in earlier


def test_each_baseline_says_what_it_compares() -> None:
    text = report.table(_this_run())

    assert "3.2 / 4 (sqlite3 on the same hourly rollup) | 3.75 (p50) |" in text
    assert "without the rollup: sqlite3 scanning the events" in text
    assert "until device state has folded them" in text  # the new http figure
    assert "posting only (device state not waited for)" in text  # the older single figure
    assert "no counts" in text  # the store's raw executemany keeps no hourly counts


def test_targets_are_those_of_the_families_measured() -> None:
    results = _this_run()
    labels = {t["target"] for t in results["targets"]}

    assert "30-day count by type per day, p99 ms" in labels
    assert "Store ingest vs raw sqlite" not in labels
    assert "Device state lookup for one endpoint, p99 ms" not in labels


def test_a_missing_figure_of_a_measured_family_says_so() -> None:
    results = {"query": {"store_events": 1}}  # the family ran, this figure is absent

    checked = {t["target"]: t for t in report.targets(results)}
    text = "\n".join(report._target_lines(list(checked.values())))

    assert checked["30-day count by type per day, p99 ms"]["met"] is None
    assert "| 30-day count by type per day, p99 ms | <= 1000 | - | not measured |" in text


def test_kept_families_carry_the_date_and_commit_of_the_run_that_measured_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.json"
    last = {  # a run of the query family that kept ingest from one before it
        "mode": "full",
        "date": "2026-12-01 10:00 UTC",
        "machine": {**MACHINE, "commit": "mid9999"},
        "query": _query(measured="2026-12-01 10:00 UTC", commit="mid9999"),
        "earlier": {"ingest": _ingest(0.8, measured="2026-11-29 17:21 UTC", commit="old5678")},
    }
    path.write_bytes(orjson.dumps(last))

    kept = run._kept(path, "full", ["delivery"])

    assert {name: (f["measured"], f["commit"]) for name, f in kept.items()} == {
        "ingest": ("2026-11-29 17:21 UTC", "old5678"),
        "query": ("2026-12-01 10:00 UTC", "mid9999"),
    }
    assert run._kept(path, "quick", ["delivery"]) == {}  # another mode's figures: none
    assert "query" not in run._kept(path, "full", ["query"])  # measured again: not kept


def test_results_from_before_commits_were_recorded_name_none_for_other_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.json"
    last = {
        "mode": "full",
        "date": "2026-11-30 11:45 UTC",
        "machine": {**MACHINE, "commit": "37da761"},
        "query": {**_query(), "measured": "2026-11-30 11:45 UTC"},
        "ingest": {**_ingest(0.9), "measured": "2026-11-29 17:21 UTC"},
    }
    path.write_bytes(orjson.dumps(last))

    kept = run._kept(path, "full", ["delivery"])

    assert kept["query"]["commit"] == "37da761"  # that run measured it
    assert kept["ingest"]["commit"] is None  # an earlier run, its commit not recorded
    part = {"mode": "full", "date": "x", "machine": MACHINE, "targets": [], "earlier": kept}
    assert "commit `unknown (not recorded)` · families: ingest" in report.table(part)

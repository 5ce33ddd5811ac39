"""The reliability figures: each test worker's counters kept, merged, published with a commit."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.reliability import figures
from tests.reliability.figures import Figures

FAMILIES = {
    "gw0": {"crash.events_lost": 0, "crash.kills_during_ingest": 2, "faults.device_state_kills": 2},
    "gw1": {"fuzz.event_bodies": 90, "fuzz.schemathesis_runs": 2, "security.isolation_cases": 30},
    "gw2": {"load.sqlite.5xx": 0, "load.sqlite.requests": 900, "streams.refused_beyond_caps": 3},
    "gw3": {"ssrf.forms_refused": 33, "starvation.bystander_deliveries": 3, "fuzz.filters": 10},
}


def load_render() -> ModuleType:
    """``reliability/render.py``, the script ``make soak`` runs."""
    path = figures.ROOT / "reliability" / "render.py"
    spec = importlib.util.spec_from_file_location("reliability_render", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_workers(runs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four workers of one run write their counters, then the controller merges them."""
    monkeypatch.setenv(figures.RUN_VARIABLE, "20261207T000000Z-test")
    for worker, counters in FAMILIES.items():
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        part = Figures("quick")
        for name, amount in counters.items():
            part.add(name, amount)
        part.add("fuzz.filters", 5)  # a counter more than one worker adds to
        if worker == "gw2":
            part.note("load.sqlite.rss_mib", "76 -> 90")
        written = part.write(runs)
        assert written == runs / "20261207T000000Z-test" / f"{worker}.json"
    latest = figures.finish_run(runs)
    assert latest == runs / "latest-quick.json"
    return latest


def test_the_merge_keeps_every_workers_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    merged = json.loads(run_workers(tmp_path, monkeypatch).read_text())
    expected = {name: value for counters in FAMILIES.values() for name, value in counters.items()}
    expected["fuzz.filters"] = 10 + 4 * 5
    assert merged["counters"] == expected
    families = {name.split(".")[0] for name in merged["counters"]}
    assert families == {"crash", "faults", "fuzz", "security", "load", "streams", "ssrf"} | {
        "starvation"
    }
    assert merged["notes"] == {"load.sqlite.rss_mib": "76 -> 90"}
    assert merged["processes"] == 4 and merged["run"] == "quick"
    assert merged["commit"] not in ("", "unknown")
    assert (tmp_path / "20261207T000000Z-test" / "merged.json").read_text() == json.dumps(
        merged, indent=2, sort_keys=True
    ) + "\n"


def test_a_process_that_counted_nothing_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(figures.RUN_VARIABLE, "empty-run")
    assert Figures("quick").write(tmp_path) is None
    assert figures.finish_run(tmp_path) is None
    assert not (tmp_path / "latest-quick.json").exists()


def test_runs_are_written_where_git_ignores_them() -> None:
    """A test run leaves the tracked results.json and RELIABILITY.md alone."""
    part = figures.RUNS / "some-run" / "gw0.json"
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(part)],
        cwd=figures.ROOT,
        check=False,
    )
    assert ignored.returncode == 0


def test_publishing_a_run_renders_every_counter_with_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    render = load_render()
    latest = run_workers(tmp_path / "runs", monkeypatch)
    merged = json.loads(latest.read_text())
    results = tmp_path / "results.json"
    soak = {"date": "2026-11-30T05:04:06Z", "commit": "8a9fd9d", "counters": {"crash.x": 1}}
    results.write_text(json.dumps({"soak": soak}))

    assert render.publish(latest, results) == "quick"
    out = tmp_path / "RELIABILITY.md"
    render.render(results, out)

    published = json.loads(results.read_text())
    assert published["soak"] == soak  # the other kind's figures stay
    assert published["quick"]["counters"] == merged["counters"]
    text = out.read_text()
    assert f"## quick run, {merged['date']}, commit `{merged['commit']}`" in text
    assert "## soak run, 2026-11-30T05:04:06Z, commit `8a9fd9d`" in text
    for name, value in merged["counters"].items():
        assert f"| `{name}`" in text and f"| {value} |" in text
    assert "| `crash.events_lost` (must be 0) | 0 |" in text

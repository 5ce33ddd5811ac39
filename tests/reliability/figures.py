"""The figures a reliability run writes down: counters per test process, merged per run.

Each test adds to named counters. At the end of its session each test process (an xdist
worker, or the only process) writes its own counters to ``reliability/runs/<run>/<worker>.json``
(an ignored directory); the session's end on the controller merges them: counters summed,
notes kept, into ``<run>/merged.json`` and ``reliability/runs/latest-<kind>.json``. A test run
never touches the tracked ``reliability/results.json``: ``python reliability/render.py
--publish <merged file>`` (``make soak``, ``make reliability-figures``) puts a merged run there,
with the commit it ran on, and renders RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "reliability" / "runs"
RUN_VARIABLE = "HERALD_RELIABILITY_RUN"
"""The run's id, set by the controller before any worker starts (workers inherit it)."""
KEEP_DAYS = 7
"""Runs' directories older than this are removed when a run ends (others may be running)."""


def run_kind() -> str:
    """``soak`` under ``make soak`` (HERALD_SOAK set), else ``quick``."""
    return "soak" if os.environ.get("HERALD_SOAK") else "quick"


def begin_run() -> str:
    """This run's id: the inherited one (an xdist worker) or a new one (the controller)."""
    if not os.environ.get(RUN_VARIABLE):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        os.environ[RUN_VARIABLE] = f"{stamp}-{uuid.uuid4().hex[:8]}"
    return os.environ[RUN_VARIABLE]


class Figures:
    """Counters of one test process, under a run kind (``quick`` or ``soak``)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.counts: Counter[str] = Counter()
        self.notes: dict[str, str] = {}

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def note(self, name: str, text: str) -> None:
        self.notes[name] = text

    def write(self, runs: Path = RUNS) -> Path | None:
        """Write this process's counters to its own file of the run (none if it counted none)."""
        if not self.counts and not self.notes:
            return None
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        path = runs / begin_run() / f"{worker}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        part = {
            "run": self.run,
            "counters": dict(sorted(self.counts.items())),
            "notes": dict(sorted(self.notes.items())),
        }
        path.write_text(json.dumps(part, indent=2, sort_keys=True) + "\n")
        return path


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures from its processes' parts: counters summed, notes kept."""
    counters: Counter[str] = Counter()
    notes: dict[str, str] = {}
    kinds = {part["run"] for part in parts}
    for part in parts:
        counters.update(part["counters"])
        notes.update(part["notes"])
    return {
        "run": "soak" if "soak" in kinds else "quick",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "commit": commit(),
        "processes": len(parts),
        "counters": dict(sorted(counters.items())),
        "notes": dict(sorted(notes.items())),
    }


def finish_run(runs: Path = RUNS) -> Path | None:
    """Merge the parts of this run (the controller, at the session's end); None if none."""
    run = runs / begin_run()
    files = sorted(path for path in run.glob("*.json") if path.name != "merged.json")
    if not files:
        return None
    merged = merge([json.loads(path.read_text()) for path in files])
    text = json.dumps(merged, indent=2, sort_keys=True) + "\n"
    (run / "merged.json").write_text(text)
    latest = runs / f"latest-{merged['run']}.json"
    latest.write_text(text)
    cutoff = time.time() - KEEP_DAYS * 86400
    for old in (path for path in runs.iterdir() if path.is_dir()):
        if old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return latest


def commit() -> str:
    """The commit the run ran on (``-dirty`` with uncommitted changes), or ``unknown``."""
    try:
        described = subprocess.run(
            ["git", "--no-optional-locks", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() or "unknown"

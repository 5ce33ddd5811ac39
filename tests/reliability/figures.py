"""The figures a reliability run writes down: counters merged into ``reliability/results.json``.

Each test adds to named counters; the session writes them once at its end, keeping the
counters of areas this run did not touch (a quick run keeps the last soak's, and back).
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "reliability" / "results.json"


class Figures:
    """Counters of one run, under a run name (``quick`` or ``soak``)."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.counts: Counter[str] = Counter()
        self.notes: dict[str, str] = {}

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount

    def note(self, name: str, text: str) -> None:
        self.notes[name] = text

    def write(self, path: Path = RESULTS) -> None:
        """Merge this run's counters into the results file."""
        if not self.counts:
            return
        results = json.loads(path.read_text()) if path.exists() else {}
        results[self.run] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "python": platform.python_version(),
            "counters": dict(sorted(self.counts.items())),
            "notes": dict(sorted(self.notes.items())),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

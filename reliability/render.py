"""Render RELIABILITY.md from reliability/results.json (written by the reliability suite)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUST_BE_ZERO = ("lost", "half_written", "5xx")

HEADER = """# Reliability

Figures of the last runs of the reliability suite: `make test` runs the quick part
(`tests/reliability`), `make soak` the long one (the same suite with minutes of load, more
kills and fuzzing budgets). This file is written by `python reliability/render.py` from
`reliability/results.json`; do not edit the tables by hand.

Counters that must be 0: every `*lost*`, `*half_written*` and `*5xx*`.

`load.*.rss_mib`: the server's RSS sampled every second under load. The peak must stay under
320 MiB; on runs of 60 s or more (the soak) the least-squares trend of the second half, after
the warm-up in which page caches fill, must stay under max(16 MiB, 10%). The quick run is all
warm-up: its trend is shown, not checked.
"""


def _table(run: str, result: dict[str, object]) -> str:
    counters = result.get("counters", {})
    notes = result.get("notes", {})
    assert isinstance(counters, dict) and isinstance(notes, dict)
    lines = [f"\n## {run} run, {result.get('date')} (Python {result.get('python')})\n"]
    lines += ["| counter | value |", "|---|---|"]
    for name, value in counters.items():
        flag = " (must be 0)" if any(word in name for word in MUST_BE_ZERO) else ""
        lines.append(f"| `{name}`{flag} | {value} |")
    lines += [f"| `{name}` | {value} |" for name, value in notes.items()]
    return "\n".join(lines) + "\n"


def render(
    results: Path = HERE / "results.json", out: Path = HERE.parent / "RELIABILITY.md"
) -> None:
    data = json.loads(results.read_text()) if results.exists() else {}
    body = HEADER + "".join(_table(run, data[run]) for run in ("quick", "soak") if run in data)
    out.write_text(body + "\n" + (HERE / "faults.md").read_text())


if __name__ == "__main__":
    render()

"""Render RELIABILITY.md from reliability/results.json; ``--publish RUN`` first puts a run's
merged figures (``reliability/runs/latest-quick.json``, ``latest-soak.json``: written by the
reliability suite's runs, ignored by git) into results.json, with the commit it ran on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MUST_BE_ZERO = ("lost", "half_written", "5xx")

HEADER = """# Reliability

Figures of published runs of the reliability suite: `make test` runs the quick part
(`tests/reliability`), `make soak` the long one (the same suite with minutes of load, more
kills and fuzzing budgets). Every run merges its test workers' counters into
`reliability/runs/latest-<quick|soak>.json` (ignored by git); `make soak` publishes its run
into `reliability/results.json` and this file, `make reliability-figures` publishes the last
quick run (after a whole `make test`). Each table names the commit the run measured
(`-dirty`: with uncommitted changes). Written by `python reliability/render.py`; do not edit
the tables by hand.

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
    commit = result.get("commit", "unknown")
    lines = [
        f"\n## {run} run, {result.get('date')}, commit `{commit}` (Python {result.get('python')})\n"
    ]
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


def publish(run_file: Path, results: Path = HERE / "results.json") -> str:
    """Put a merged run's figures into results.json under its kind; the kind published."""
    run = json.loads(run_file.read_text())
    data = json.loads(results.read_text()) if results.exists() else {}
    data[run["run"]] = {
        key: run[key] for key in ("date", "python", "commit", "counters", "notes") if key in run
    }
    results.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return str(run["run"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--publish", type=Path, metavar="RUN", help="a merged run file first")
    arguments = parser.parse_args()
    if arguments.publish:
        if not arguments.publish.exists():
            parser.exit(1, f"{arguments.publish} not found: run the reliability suite first\n")
        kind = publish(arguments.publish)
        sys.stdout.write(f"published the {kind} run of {arguments.publish}\n")
    render()

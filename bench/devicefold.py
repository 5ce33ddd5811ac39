"""Device state (issue 33): the CPU the projector's fold takes per event, in process.

``python -m bench.devicefold [--events N] [--repeats R]``: the events of HTTP batches as the
ingest path builds them (``bench.events``: one organisation's 25,000 endpoints, a realistic
mix of types; about 98 % of a 1,000-event chunk on different endpoints), folded chunk by
chunk as the projector folds what its process appended (``DeviceProjector._fold`` and
``flush``): each chunk parsed, the states of the endpoints it names loaded from the texts
the projector keeps as written, folded, the changed states' rows made, the texts kept. Every
endpoint has a state already (a warm-up of ``WARM`` events folded first): the steady state
of a running server. Also the same events read back from the log (``log``: the records'
stored bytes decoded, as an owner that did not append them folds them), and with every
organisation asking for status changes (``watched``).

CPU µs per event (``time.process_time``: robust to the machine's other load), beside a raw
baseline in the same run: each event iterated and one dict touched per event. Each path
runs ``R`` times, alternating (raw, paths, paths reversed, raw: an A/B puts the fold before
a change beside the one after while both are in the code, as issue 33's did, named ``old``
and ``new``), the spread is the min and max of the repeats. The paths' rows are checked
byte-identical first. Results in ``bench/results/devicefold.json``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import machine
from bench.events import ENDPOINTS_PER_ORGANISATION, document, event_id, new_events
from herald.catalog import load_catalog
from herald.devices import fold as device_fold
from herald.devices import state as device_state
from herald.events.types import LogEntry
from herald.record import NewEvent
from herald.store.device_records import DeviceRow

ORGANISATION = 1  # as the ingest family posts its batches
CHUNK = 1000  # events per fold: one HTTP batch
WARM = 100_000  # events folded before the clock: nearly every endpoint has a state
START_MS = 1_790_000_000_000
SPAN_MS = 3_600_000  # the events' timestamps spread over an hour, oldest first
AT_MS = START_MS + SPAN_MS
RESULTS = Path(__file__).with_name("results") / "devicefold.json"

Texts = dict[tuple[int, str], str]
Chunk = tuple[list[LogEntry], dict[int, NewEvent]]


@dataclass(frozen=True)
class FoldPath:
    """One implementation of the projector's fold: its parse, loads, fold and to_row."""

    name: str
    parse: Callable[..., Sequence[tuple[tuple[int, str], Any]]]
    loads: Callable[[str], Any]
    fold: Callable[..., tuple[Mapping[tuple[int, str], Any], list[Any]]]
    to_row: Callable[[int, str, Any, int], DeviceRow]


def _paths() -> list[FoldPath]:
    """The folds to measure: the one in the code (an A/B adds the one before a change,
    alternating with it, while both are in the code: issue 33's did)."""
    fold = FoldPath(
        "fold", device_fold.parse, device_state.loads, device_fold.fold, device_fold.to_row
    )
    return [fold]


def _events(count: int, first: int, total: int) -> list[tuple[LogEntry, NewEvent]]:
    """Events ``first`` to ``first + count`` of the fleet's ``total`` as appended: the log's
    entries as the projector reads them (``_read_appended``: no body) and the events as
    built."""
    catalog, names = load_catalog(), {ORGANISATION: "Organisation 1"}
    found: list[tuple[LogEntry, NewEvent]] = []
    for i in range(first, first + count):
        at = START_MS + i * SPAN_MS // total
        (built,) = new_events([document(i, at, ORGANISATION)], catalog, AT_MS, names)
        eid = event_id(i, at)
        entry = LogEntry(i + 1, ORGANISATION, built.type_id, b"", eid, built.timestamp_ms)
        found.append((entry, built))
    return found


def _chunks(events: list[tuple[LogEntry, NewEvent]], from_log: bool) -> list[Chunk]:
    """The events in chunks of ``CHUNK``: as built (the entries and the events by id), or
    as read from the log (the entries with their stored bytes, nothing built)."""
    found: list[Chunk] = []
    for start in range(0, len(events), CHUNK):
        part = events[start : start + CHUNK]
        if from_log:
            entries = [e._replace(body=b.stored_body(e.event_id)) for e, b in part]
            found.append((entries, {}))
        else:
            found.append(([e for e, _ in part], {e.event_id: b for e, b in part}))
    return found


def _step(path: FoldPath, chunk: Chunk, texts: Texts, watched: Any) -> list[DeviceRow]:
    """One projector step: parse, the states as written, fold, rows, the texts kept."""
    entries, built = chunk
    events = path.parse(entries, built)
    current = {}
    for key, _ in events:
        if key not in current:
            text = texts.get(key)
            current[key] = path.loads(text) if text else None
    changed, _ = path.fold(current, events, watched)
    rows = [path.to_row(org, key, state, AT_MS) for (org, key), state in changed.items()]
    for row in rows:
        texts[(row.organisation_id, row.endpoint_key)] = row.state
    return rows


def _raw(chunks: list[Chunk], texts: Texts) -> None:
    """The baseline: each event iterated, one dict per event touched."""
    seen: dict[tuple[int, int], int] = {}
    for entries, built in chunks:
        for entry in entries:
            record = built[entry.event_id].record
            seen[(entry.organisation_id, record["endpoint"]["id"])] = entry.event_id


def _run(path: FoldPath, chunks: list[Chunk], texts: Texts, watched: bool) -> float:
    """CPU seconds of folding ``chunks`` onto a copy of ``texts``."""
    mine = dict(texts)
    wanted = (lambda at, event: True) if watched else None
    gc.collect()
    began = time.process_time()
    for chunk in chunks:
        _step(path, chunk, mine, wanted)
    return time.process_time() - began


def _raw_run(chunks: list[Chunk], texts: Texts) -> float:
    gc.collect()
    began = time.process_time()
    _raw(chunks, texts)
    return time.process_time() - began


def _check(paths: list[FoldPath], chunks: list[Chunk], texts: Texts) -> int:
    """The paths' rows and status changes, byte for byte the same: how many rows."""
    rows: list[list[tuple[Any, ...]]] = []
    for path in paths:
        mine, written = dict(texts), list[tuple[Any, ...]]()
        for chunk in chunks:
            events = path.parse(*chunk)
            current = {key: path.loads(t) if (t := mine.get(key)) else None for key, _ in events}
            changed, found = path.fold(current, events, lambda at, event: True)
            made = [path.to_row(o, k, s, AT_MS) for (o, k), s in changed.items()]
            mine.update(((r.organisation_id, r.endpoint_key), r.state) for r in made)
            written += [(r,) for r in made]
            written += [(c.key, c.before, c.after, c.cause.event_id, c.endpoint) for c in found]
        rows.append(written)
    if any(found != rows[0] for found in rows[1:]):
        raise AssertionError("the fold paths do not write the same rows")
    return sum(1 for row in rows[0] if len(row) == 1)


def _figure(seconds: list[float], events: int) -> dict[str, Any]:
    us = [s / events * 1e6 for s in seconds]
    return {
        "us_per_event": round(statistics.mean(us), 2),
        "min": round(min(us), 2),
        "max": round(max(us), 2),
    }


def devicefold_bench(events: int, repeats: int, warm_events: int = WARM) -> dict[str, Any]:
    """Every figure: µs of CPU per event, per path and source, beside the raw baseline."""
    paths = _paths()
    warm = _events(warm_events, 0, warm_events + events)
    measured = _events(events, warm_events, warm_events + events)
    texts: Texts = {}
    for chunk in _chunks(warm, from_log=False):
        _step(paths[0], chunk, texts, None)
    sources = {"built": _chunks(measured, False), "log": _chunks(measured, True)}
    rows = _check(paths, sources["built"], texts)
    gc.freeze()  # the inputs stay: the collector does not walk them in every round
    timings: dict[str, list[float]] = {}
    order = [*paths, *reversed(paths)]
    for _ in range(repeats):
        timings.setdefault("raw", []).append(_raw_run(sources["built"], texts))
        for source, chunks in sources.items():
            for watched in (False, True):
                for path in order:
                    name = f"{path.name}:{source}{':watched' if watched else ''}"
                    timings.setdefault(name, []).append(_run(path, chunks, texts, watched))
        timings["raw"].append(_raw_run(sources["built"], texts))
    figures = {name: _figure(seconds, events) for name, seconds in timings.items()}
    raw = figures["raw"]["us_per_event"]
    over_raw = {name: round(f["us_per_event"] / raw, 1) for name, f in figures.items()}
    new_to_old = {
        name.removeprefix("new:"): round(f["us_per_event"] / old["us_per_event"], 3)
        for name, f in figures.items()
        if name.startswith("new:") and (old := figures.get("old:" + name[4:]))
    }
    return {
        "events": events,
        "chunk": CHUNK,
        "warm_up_events": warm_events,
        "endpoints": len(texts),
        "fleet_endpoints": ENDPOINTS_PER_ORGANISATION,
        "rows_written": rows,
        "repeats": repeats,
        "us_per_event": figures,
        "times_raw": over_raw,
        **({"new_to_old": new_to_old} if new_to_old else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=int, default=WARM)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    began = os.getloadavg()[0]
    result = {"machine": machine(), **devicefold_bench(args.events, args.repeats, args.warm)}
    # the machine's other load (process_time counts this process alone, but shares caches)
    result["load_average"] = {"before": began, "after": os.getloadavg()[0]}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    for name, figure in result["us_per_event"].items():
        print(f"{name:24} {figure}")  # noqa: T201


if __name__ == "__main__":
    main()

"""A rule replayed over past events, each at its own time: no clock, nothing written."""

from __future__ import annotations

from typing import Any

import orjson

from herald.rules.conditions import Seen
from herald.rules.preview import replay
from herald.rules.types import Condition, RuleSpec

MIN = 60_000


def seen(key: str, minute: float, event_id: int, type_id: int = 7) -> tuple[str, Seen]:
    record: dict[str, Any] = {"endpoint": {"id": int(key)}}
    return key, Seen(event_id, type_id, int(minute * MIN), orjson.dumps(record), record)


def test_a_count_fires_per_burst_held_down_between() -> None:
    three = Condition("count", window_ms=10 * MIN, count=3)
    events = [seen("7", m, i) for i, m in enumerate((0, 1, 2, 30, 31, 32, 50, 51, 52))]
    events += [seen("8", m, 100 + i) for i, m in enumerate((0, 20, 40))]  # never 3 in 10
    rule = RuleSpec("r", "type:7", "endpoint", three)
    assert replay(rule, sorted(events, key=lambda e: e[1].timestamp_ms), 60 * MIN, 100) == {"7": 3}
    held = RuleSpec("r", "type:7", "endpoint", three, hold_down_ms=20 * MIN)
    # the first resolves at 10, held down until 30: the burst at 30-32 fires; it resolves
    # at 40, held down until 60: the one at 50-52 does not
    assert replay(held, events[:9], 60 * MIN, 100) == {"7": 2}


def test_an_absence_fires_on_time_between_events() -> None:
    silent = RuleSpec("r", "", "endpoint", Condition("absence", window_ms=10 * MIN))
    events = [seen("7", 0, 1), seen("8", 5, 2), seen("7", 30, 3), seen("8", 50, 4)]
    # 7: silent 0-30 (fires at 10), 30-60 (fires at 40); 8: 5-50 (at 15), 50-60 (at 60)
    assert replay(silent, events, 60 * MIN, 100) == {"7": 2, "8": 2}
    assert replay(silent, events, 60 * MIN, 1) == {"7": 2}  # one group at most

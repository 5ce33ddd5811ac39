"""What a condition makes of the events it sees and of the time: pure functions of a group's
working state (a JSON-able dict), the event and ``now`` (no clock is read here).

- count keeps the latest ``count`` matching events (time, id): the condition holds while
  the oldest of them is within the window of ``now``, and for the step that sees them come
  within one window of each other (a ``hit``: an evaluation running late still fires).
- absence keeps the last matching event: it holds once ``now`` is a window past it.
- state folds the endpoint's status (``devices.state``) from its events and keeps since when
  it has been in the set: it holds once it has been there for the window.
- threshold sums the endpoint's data usage in the period as the usage routes do
  (``devices.usage``): per UTC day, the provider's data usage records if the day has any
  (``take_records``: the evaluator reads them), else the volume of the sessions closed that
  day (a Delete PDP Context's ``detail.volume``); it holds once at least the threshold,
  until the period ends.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from herald.devices import state as device_state
from herald.devices.usage import session_traffic
from herald.ingest.usage import UNITS_PER_MB
from herald.query.fields import BY_NAME, DELETE_PDP_CONTEXT
from herald.rules.types import Condition
from herald.store.usage_records import Traffic

DAY_MS = 86_400_000
_TIMESTAMP = BY_NAME["timestamp"]
State = dict[str, Any]


@dataclass(slots=True)
class Seen:
    """One matching event, as a condition needs it (one per event, shared by every rule
    that sees it: what it means for a device is worked out once)."""

    event_id: int
    type_id: int
    timestamp_ms: int
    body: bytes
    record: dict[str, Any]
    _effect: device_state.Effect | None = field(default=None, repr=False, compare=False)
    _traffic: tuple[Traffic | None] | None = field(default=None, repr=False, compare=False)

    def device_effect(self) -> device_state.Effect:
        """What the event does to its device's status (its facts; worked out at the first
        call)."""
        if self._effect is None:
            event = device_state.DeviceEvent(
                self.event_id, self.type_id, self.timestamp_ms, self.record
            )
            self._effect = device_state.effect(event, values=False)
        return self._effect

    def traffic(self) -> Traffic | None:
        """The data volume of the session the event closes (None: it closes none; worked
        out at the first call)."""
        if self._traffic is None:
            closes = self.type_id == DELETE_PDP_CONTEXT  # what the usage routes count
            self._traffic = (session_traffic(self.timestamp_ms, self.body) if closes else None,)
        return self._traffic[0]


def timestamp_of(record: dict[str, Any]) -> int | None:
    """A stored record's ``timestamp`` in ms (None if unreadable)."""
    at: int | None = _TIMESTAMP.value(record)
    return at


# -- observing events -------------------------------------------------------------------
def observe(condition: Condition, state: State, event: Seen) -> None:
    """Fold one matching event into a group's ``state`` (in place)."""
    if condition.kind == "count":
        _observe_count(state, event, condition.count, condition.window_ms)
    elif condition.kind == "absence":
        last = state.get("last")
        if last is None or (event.timestamp_ms, event.event_id) > tuple(last):
            state["last"] = [event.timestamp_ms, event.event_id]
    elif condition.kind == "state":
        _observe_state(state, event, condition.statuses)
    else:
        _observe_usage(state, event, condition.period)


def _observe_count(state: State, event: Seen, count: int, window: int) -> None:
    times: list[list[int]] = state.setdefault("times", [])
    bisect.insort(times, [event.timestamp_ms, event.event_id])
    del times[: max(0, len(times) - count)]  # the latest ``count`` decide
    if len(times) >= count and times[-1][0] - times[0][0] <= window:
        state["hit"] = True


@functools.lru_cache(maxsize=4096)
def _status(facts: tuple[tuple[str, int], ...]) -> str:
    """The status of a device with these facts (the state rules of one device, which fold
    the same events into the same facts, work it out once)."""
    return device_state.status(device_state.DeviceState(0, dict(facts), {})).name


def _observe_state(state: State, event: Seen, statuses: tuple[str, ...]) -> None:
    effect = event.device_effect()
    times: dict[str, int] = state.setdefault("facts", {})
    device_state.merge(times, {}, effect)
    status = _status(tuple(times.items()))
    if status != state.get("status"):
        state["status"] = status
        state["since"] = event.timestamp_ms if status in statuses else None
        state["cause"] = event.event_id
    state["last"] = event.event_id


def period_start(period: str, ms: int) -> int:
    """The start of the UTC day or month ``ms`` is in."""
    if period == "day":
        return ms - ms % DAY_MS
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)


def period_end(period: str, start: int) -> int:
    """The start of the period after the one starting at ``start``."""
    if period == "day":
        return start + DAY_MS
    moment = datetime.fromtimestamp(start / 1000, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _observe_usage(state: State, event: Seen, period: str) -> None:
    traffic = event.traffic()
    if traffic is None:
        return
    start = period_start(period, event.timestamp_ms)
    kept = state.get("period", 0)
    if start < kept:
        return  # a session of a past period
    if start > kept:
        state.clear()
        state.update(period=start, first=event.event_id)
    sessions = _sessions(state)
    day = str(event.timestamp_ms // DAY_MS)
    sessions[day] = sessions.get(day, 0) + traffic.total
    state["last"] = event.event_id
    state["units"] = usage_units(state)


def _sessions(state: State) -> dict[str, int]:
    """The period's sessions' volume per UTC day (a state kept before days were told apart
    has its sum under "before", never a day of records)."""
    if "sessions" not in state:
        kept_before = state.get("units") and "records" not in state
        state["sessions"] = {"before": state["units"]} if kept_before else {}
    sessions: dict[str, int] = state["sessions"]
    return sessions


def usage_units(state: State) -> int:
    """The period's data usage (millionths of a MB) by the usage routes' rule: per day, its
    data usage records if it has any, else its sessions."""
    records: dict[str, int] = state.get("records", {})
    sessions: dict[str, int] = state.get("sessions", {})
    counted = sum(units for day, units in sessions.items() if day not in records)
    return sum(records.values()) + counted


def take_records(condition: Condition, state: State, records: dict[int, int], now: int) -> None:
    """Give a threshold's ``state`` its endpoint's data usage records (UTC day -> their
    total, of the days that have any) of the period current at ``now``."""
    start = period_start(condition.period, now)
    kept = state.get("period", 0)
    if kept > start:
        return  # its sessions are of a later period than now's (a clock behind)
    if kept < start:
        state.clear()
    first_day = start // DAY_MS
    mine = {str(day): units for day, units in records.items() if day >= first_day}
    if not mine and not _sessions(state):
        state.clear()  # nothing in the period
        return
    state.update(period=start, records=mine)
    state["units"] = usage_units(state)


# -- the condition at a time ------------------------------------------------------------
def holds(condition: Condition, state: State, now: int) -> bool:
    """Whether the condition holds for the group at ``now``."""
    window = condition.window_ms
    if condition.kind == "count":
        times = state.get("times", [])
        current = len(times) >= condition.count and times[0][0] >= now - window
        return current or bool(state.get("hit"))
    if condition.kind == "absence":
        last = state.get("last")
        return last is not None and now - last[0] >= window
    if condition.kind == "state":
        since = state.get("since")
        return since is not None and now - since >= window
    units = state.get("units", 0)
    current = state.get("period") == period_start(condition.period, now)
    return current and units >= condition.megabytes * UNITS_PER_MB


def due(condition: Condition, state: State, now: int) -> int | None:
    """The time at which time alone may change ``holds`` (None: only an event can)."""
    window = condition.window_ms
    at: int | None = None
    if condition.kind == "count":
        times = state.get("times", [])
        if len(times) >= condition.count:
            at = times[0][0] + window + 1  # the oldest leaves the window
    elif condition.kind == "absence":
        last = state.get("last")
        at = None if last is None else last[0] + window
    elif condition.kind == "state":
        since = state.get("since")
        at = None if since is None else since + window
    elif "period" in state:
        at = period_end(condition.period, state["period"])
    return at


def settle(condition: Condition, state: State) -> None:
    """End the step: forget what held for it only (a count's hit)."""
    state.pop("hit", None)


def prune(condition: Condition, state: State, now: int) -> None:
    """Forget what can no longer count at ``now`` (a count's events out of the window)."""
    if condition.kind == "count":
        cutoff = now - condition.window_ms
        state["times"] = [t for t in state.get("times", []) if t[0] >= cutoff]


def idle(condition: Condition, state: State) -> bool:
    """Whether the state says nothing a later event or time would need (the group may go)."""
    if condition.kind == "count":
        return not state.get("times")
    if condition.kind == "threshold":
        return not state.get("units")
    return False  # an absence or a status is kept: time alone may make it hold


def measure(condition: Condition, state: State, now: int) -> dict[str, Any]:
    """What an alert reports of the condition: the count or the age, and the events."""
    if condition.kind == "count":
        times = state.get("times", [])
        found: dict[str, Any] = {"count": len(times)}
        if times:
            found |= {"first_event_id": times[0][1], "last_event_id": times[-1][1]}
        return found
    if condition.kind == "absence":
        last = state.get("last")
        if last is None:
            return {}
        # 0: a device known from its state, whose last event was before the rule
        return {"age_seconds": (now - last[0]) // 1000, "last_event_id": last[1] or None}
    if condition.kind == "state":
        since = state.get("since")
        return {
            "status": state.get("status"),
            "age_seconds": None if since is None else (now - since) // 1000,
            "first_event_id": state.get("cause"),
            "last_event_id": state.get("last"),
        }
    return {
        "megabytes": state.get("units", 0) / UNITS_PER_MB,
        "first_event_id": state.get("first"),
        "last_event_id": state.get("last"),
    }

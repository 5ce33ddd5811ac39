"""A rule run over the stored events of a past range, nothing written: how many times, and
for which groups, it would have fired. The events are replayed in time order through the
same conditions and lifecycle as the evaluator's, each at its own time, with the timer pass
run between them (``replay`` is pure; ``preview`` reads the events)."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from herald.events.types import EventQuery, SortKey
from herald.handlers.filters import handler_filter
from herald.rules import alerts, conditions, lifecycle
from herald.rules.lifecycle import Transition
from herald.rules.types import Group, RuleSpec
from herald.store import Store

MAX_EVENTS = 200_000  # matching events one preview reads at most
PAGE = 2000
Progress = Callable[[int, int], None]  # (events read, the time read up to in ms)


@dataclass(frozen=True, slots=True)
class Preview:
    """What a rule would have done over a range."""

    fired: int  # firings, all groups together
    groups: dict[str, int]  # firings per group key
    events: int  # matching events replayed
    complete: bool  # False: stopped after MAX_EVENTS (the range's start only)


def replay(
    spec: RuleSpec, events: Iterable[tuple[str, conditions.Seen]], until_ms: int, max_groups: int
) -> Counter[str]:
    """How many times each group would have fired, given the rule's matching ``events``
    (with their group keys) in time order, up to ``until_ms``."""
    condition = spec.condition
    groups: dict[str, Group] = {}
    due: list[tuple[int, str]] = []
    fired: Counter[str] = Counter()

    def move(group: Group, now: int, seen: list[conditions.Seen]) -> None:
        for event in seen:
            conditions.observe(condition, group.state, event)
        transition, _ = lifecycle.evaluate(condition, group, now, spec.hold_down_ms, bool(seen))
        if transition is Transition.FIRED:
            fired[group.key] += 1
        if group.due_ms is not None:
            heapq.heappush(due, (group.due_ms, group.key))

    def timers(upto: int) -> None:
        while due and due[0][0] <= upto:
            at, key = heapq.heappop(due)
            group = groups[key]
            if group.due_ms == at:  # else superseded by a later move
                move(group, at, [])

    for key, event in events:
        timers(event.timestamp_ms)
        group = groups.get(key)
        if group is None:
            if len(groups) >= max_groups:
                continue
            group = groups[key] = Group(0, key, 0)
        move(group, event.timestamp_ms, [event])
    timers(until_ms)
    return fired


def _matching(
    store: Store,
    organisation_id: int,
    spec: RuleSpec,
    from_ms: int,
    until_ms: int,
    time_limit: float | None,
    found: list[int],
    progress: Progress | None = None,
) -> Iterator[tuple[str, conditions.Seen]]:
    """The rule's matching events of the range in time order, with their group keys
    (``found[0]`` counts them; ``progress`` is told after each page)."""
    flt = handler_filter(spec.q).replace(
        organisation_ids=(organisation_id,), from_ms=from_ms, until_ms=until_ms
    )
    query = EventQuery(
        filter=flt,
        sort=(SortKey("timestamp", False),),
        per_page=PAGE,
        count=False,
        time_limit=time_limit,
    )
    read = 0
    while True:
        page = store.log.query(query)
        read += len(page.items)
        if progress is not None and page.items:
            last = conditions.timestamp_of(orjson.loads(page.items[-1]))
            progress(read, from_ms if last is None else last)
        for body in page.items:
            record: dict[str, Any] = orjson.loads(body)
            if record.get("event_type", {}).get("id") in alerts.TYPES:
                continue
            key = alerts.group_key(spec.group, record)
            at = conditions.timestamp_of(record)
            if key is None or at is None:
                continue
            found[0] += 1
            type_id = int(record["event_type"]["id"])
            yield key, conditions.Seen(int(record["id"]), type_id, at, body, record)
            if found[0] >= MAX_EVENTS:
                return
        if page.next_cursor is None:
            return
        query = EventQuery(
            filter=flt,
            sort=query.sort,
            per_page=PAGE,
            cursor=page.next_cursor,
            count=False,
            time_limit=time_limit,
        )


def preview(
    store: Store,
    organisation_id: int,
    spec: RuleSpec,
    from_ms: int,
    until_ms: int,
    *,
    max_groups: int,
    time_limit: float | None = None,
    progress: Progress | None = None,
) -> Preview:
    """Blocking: run ``spec`` over ``organisation_id``'s stored events from ``from_ms`` to
    ``until_ms`` (each page of the read within ``time_limit``), telling ``progress`` how far
    the read has come after each page."""
    found = [0]
    events = _matching(store, organisation_id, spec, from_ms, until_ms, time_limit, found, progress)
    fired = replay(spec, events, until_ms, max_groups)
    return Preview(sum(fired.values()), dict(fired), found[0], found[0] < MAX_EVENTS)

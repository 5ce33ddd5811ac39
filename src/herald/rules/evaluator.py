"""Evaluates the rules from the log: a ``herald.follower.Follower`` whose cursor is the
evaluator's position, as the device projector is.

Each step reads the log after the position (on PostgreSQL only up to the safe watermark),
folds each organisation's matching events into its own rules' groups, looks at the groups
time alone may have changed (an absence or a status reaching its window, a count's events
leaving it, a hold-down ending), and writes the changed groups, the alert events and the
new position in one transaction (the writer's ``append_with`` joined by
``store.rules.saving``, compare-and-set; the groups and alerts of a rule changed
meanwhile are left out there). Once the log is read to its end, a timer pass does the same
for the groups that are due, without moving the position: an absence fires on time though
no event arrives. After a kill -9 the next step starts from the recorded position and
state, so an alert is neither lost nor written twice (its id is deterministic too). Rules
are read at every step: one changed or deleted stops firing at once.

The evaluator keeps the groups it last read or wrote (up to ``cache``), so that a step
reads from the store only the groups new to it: they are the stored ones while the
recorded position and its stamp are those of its own last write (every write changes the
stamp, compare-and-set too); otherwise, or after a failed write, it starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from herald import metrics
from herald.catalog import Catalog
from herald.events.types import LogEntry
from herald.events.writer import EventWriter
from herald.follower import Follower, LogReader
from herald.handlers.filters import handler_filter
from herald.ids import IdGenerator
from herald.loops import Loops, run_forever
from herald.model import NewEvent
from herald.query.filter import EventFilter
from herald.rules import alerts, conditions, lifecycle, usage
from herald.rules.types import Group, Rule
from herald.store import Store
from herald.threads import Threads
from herald.timefmt import now_ms

log = logging.getLogger(__name__)
CHUNK = 2000  # log entries per step
CACHE = 200_000  # groups kept in memory
Key = tuple[int, str]  # (rule id, group key)
Stream = tuple[int, str, str]  # (organisation id, q, grouping): rules that see the same events


def matching(
    rules: Sequence[Rule], entries: Sequence[LogEntry]
) -> dict[Key, list[conditions.Seen]]:
    """The events each (rule, group) sees in ``entries``: its own organisation's, after the
    rule's start, selected by its filter; never alert events. Rules of one organisation
    with the same filter and grouping share the work (and the lists)."""
    streams: dict[Stream, list[Rule]] = defaultdict(list)
    for rule in rules:
        streams[(rule.organisation_id, rule.spec.q, rule.spec.group)].append(rule)
    by_organisation: dict[int, list[tuple[Stream, EventFilter, int]]] = defaultdict(list)
    for stream, members in streams.items():  # each filter once per step, not once per entry
        start = min(rule.after_seq for rule in members)
        by_organisation[stream[0]].append((stream, handler_filter(stream[1]), start))
    by_type: dict[tuple[int, int], list[tuple[Stream, EventFilter, int]]] = {}
    found: dict[Stream, dict[str, list[tuple[int, conditions.Seen]]]] = defaultdict(dict)
    for entry in entries:
        if entry.type_id in alerts.TYPES:
            continue
        index = (entry.organisation_id, entry.type_id)
        candidates = by_type.get(index)
        if candidates is None:  # the streams whose filter may take this type
            candidates = by_type[index] = [
                (stream, flt, start)
                for stream, flt, start in by_organisation.get(entry.organisation_id, ())
                if flt.type_ids is None or entry.type_id in flt.type_ids
            ]
        event: conditions.Seen | None = None  # one per entry, shared by its rules
        keys: dict[str, str | None] = {}  # the entry's group key of each grouping
        for stream, flt, start in candidates:
            if entry.seq <= start:
                continue
            if event is None:
                event = _seen(entry)
                if event is None:
                    break  # no rule can place it in time
            if not flt.matches(event.record):
                continue
            group_by = stream[2]
            if group_by not in keys:
                keys[group_by] = alerts.group_key(group_by, event.record)
            key = keys[group_by]
            if key is not None:
                found[stream].setdefault(key, []).append((entry.seq, event))
    seen: dict[Key, list[conditions.Seen]] = {}
    for stream, groups in found.items():
        for key, events in groups.items():
            shared = [event for _, event in events]
            for rule in streams[stream]:
                if rule.after_seq < events[0][0]:
                    seen[(rule.id, key)] = shared
                elif own := [event for seq, event in events if seq > rule.after_seq]:
                    seen[(rule.id, key)] = own
    return seen


def _seen(entry: LogEntry) -> conditions.Seen | None:
    """The entry as the conditions see it (None: its time cannot be read)."""
    parsed = orjson.loads(entry.body)
    record: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    at = entry.timestamp_ms
    if at is None:
        at = conditions.timestamp_of(record)
    if at is None:
        return None
    return conditions.Seen(entry.event_id, entry.type_id, at, entry.body, record)


@dataclass
class Evaluated:
    """What a step writes with the evaluator's position."""

    revisions: dict[int, int]  # the rules' revisions the step read (rule id -> revision)
    stamp: tuple[int, int] | None  # the stamped position the step read the groups at
    groups: list[Group] = field(default_factory=list)  # changed
    dropped: list[Key] = field(default_factory=list)  # forgotten: nothing left to keep
    alerts: list[tuple[int, NewEvent]] = field(default_factory=list)  # (rule id, event)
    refused: dict[int, set[str]] = field(default_factory=dict)  # new groups beyond the limit

    def __bool__(self) -> bool:
        return bool(self.groups or self.dropped or self.refused)


class RuleEvaluator:
    """Evaluates every organisation's rules from the log; one per process (more are safe:
    the position is compare-and-set). ``clock`` gives the time (tests set it)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        ids: IdGenerator,
        *,
        max_groups: int = 10_000,
        chunk: int = CHUNK,
        cache: int = CACHE,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.writer = EventWriter(store, ids, catalog)
        self.max_groups = max_groups
        self.cache = cache
        self.clock = clock
        self._names: dict[int, str] = {}
        self._stored: OrderedDict[Key, Group | None] = OrderedDict()  # None: no row
        self._revisions: dict[int, int] = {}  # of the rules whose groups ``_stored`` has
        self._stamp: tuple[int, int] | None = None  # the stamped position it is true at
        self._refused: set[tuple[int, int, str]] = set()  # (rule, revision, key) kept refused
        self._threads = Threads("herald-rules", 1)
        self.follower = Follower(
            LogReader(store, self._threads.run), self, self._evaluate, batch=chunk
        )

    # -- the cursor (run in the store's thread) ---------------------------------
    def position(self) -> int:
        """Where the evaluation is; past what no rule sees (before the earliest rule's
        start, or the whole log when there is none), so that is never read."""
        end = self.store.log.last_seq()  # first: a rule made after it starts after it
        rules = self.store.rules.active()
        start = min((rule.after_seq for rule in rules), default=end)
        return max(self._recorded(), start)

    def _recorded(self) -> int:
        """The recorded position; the groups kept are forgotten unless this evaluator's
        own last step wrote it (its stamp is this evaluator's)."""
        stamped = self.store.rules.stamped_position()
        if stamped != self._stamp:
            self._forget()
        self._stamp = stamped
        return stamped[0]

    def advance(self, after_seq: int, upto_seq: int, output: Evaluated) -> bool:
        """Write the groups and alert events with the position's move (compare-and-set of
        the position and of the stamp the step read)."""
        read = output.stamp
        stamp = secrets.randbits(62) + 1
        saved = read is not None and self._write(after_seq, upto_seq, output, (read[1], stamp))
        if not saved:
            self._forget()
            return False
        self._stamp = (upto_seq, stamp)
        self._keep(output)
        if len(self._refused) > self.cache:
            self._refused.clear()
        self._refused.update(
            (rule_id, output.revisions[rule_id], key)
            for rule_id, keys in output.refused.items()
            for key in keys
        )
        return True

    def _write(
        self, after_seq: int, upto_seq: int, output: Evaluated, stamp: tuple[int, int]
    ) -> bool:
        counted = [0]
        saving = self.store.rules.saving(
            after_seq,
            upto_seq,
            output.revisions,
            output.groups,
            output.dropped,
            stamp,
            refused=output.refused,
            max_refused=self.max_groups,
            counted=counted,
        )
        rules = [rule_id for rule_id, _ in output.alerts]
        current = self.writer.append_with(
            [event for _, event in output.alerts],
            saving,
            standing=lambda current: [rule_id in current for rule_id in rules],
        )
        if current is None:
            return False
        metrics.RULE_GROUPS_REFUSED.inc(counted[0])
        return True

    # -- the groups kept (as stored while ``_stamp`` is the recorded one) ---------
    def _forget(self) -> None:
        self._stored.clear()
        self._revisions.clear()
        self._stamp = None

    def _keep(self, output: Evaluated) -> None:
        """Remember the groups a step wrote or dropped, as now stored, forgetting the least
        recently used beyond ``cache``."""
        kept = self._stored
        for group in output.groups:
            if output.revisions.get(group.rule_id) == self._revisions.get(group.rule_id):
                kept[(group.rule_id, group.key)] = group
                kept.move_to_end((group.rule_id, group.key))
        for key in output.dropped:
            kept[key] = None
            kept.move_to_end(key)
        while len(kept) > self.cache:
            kept.popitem(last=False)

    def _groups(self, rules: dict[int, Rule], keys: Iterable[Key]) -> dict[Key, Group]:
        """The stored groups of ``keys`` that have one, from those kept or the store."""
        for rule_id, revision in list(self._revisions.items()):
            rule = rules.get(rule_id)
            if rule is None or rule.revision != revision:  # its stored groups went or wait
                self._revisions.pop(rule_id)
                for key in [k for k in self._stored if k[0] == rule_id]:
                    del self._stored[key]
        self._revisions |= {rule.id: rule.revision for rule in rules.values()}
        found: dict[Key, Group] = {}
        missing: list[Key] = []
        for key in keys:
            if key in self._stored:
                group = self._stored[key]
                if group is not None:
                    found[key] = group
            elif key[0] in rules:
                missing.append(key)
        if missing:
            read = self.store.rules.groups(missing)
            found |= read
            for key in missing:
                self._stored[key] = read.get(key)
        return found

    # -- evaluation -------------------------------------------------------------
    async def _evaluate(self, entries: list[LogEntry]) -> Evaluated:
        return await self._threads.run(self.evaluate, entries)

    def evaluate(self, entries: Sequence[LogEntry]) -> Evaluated:
        """Blocking: what ``entries`` and the time do to the groups, from their stored
        state."""
        now = self.clock()
        repository = self.store.rules
        stamp, self._stamp = self._stamp, None  # the groups kept are changed from here on
        if stamp is None:
            self._forget()
        rules = {rule.id: rule for rule in repository.active()}
        output = Evaluated({rule.id: rule.revision for rule in rules.values()}, stamp)
        if not rules:
            return output
        seen = matching(list(rules.values()), entries)
        stored = self._groups(rules, [*seen, *repository.due(now)])
        counts = repository.group_counts() if any(k not in stored for k in seen) else {}
        moving: list[tuple[Rule, Group]] = []
        for key in sorted(set(seen) | set(stored)):
            rule = rules.get(key[0])
            if rule is None:
                continue  # disabled: its groups wait, untouched
            group = stored.get(key)
            if group is None:
                if counts.get(rule.id, 0) >= self.max_groups:
                    if (rule.id, rule.revision, key[1]) not in self._refused:
                        output.refused.setdefault(rule.id, set()).add(key[1])
                    continue
                counts[rule.id] = counts.get(rule.id, 0) + 1
                group = Group(rule.id, key[1], rule.organisation_id)
            moving.append((rule, group))
        for rule_id, keys in output.refused.items():
            log.warning(
                "rules: rule %d tracks %d groups, the most (HERALD_MAX_GROUPS_PER_RULE): "
                "%d more refused",
                rule_id,
                self.max_groups,
                len(keys),
            )
        recorded = self._take_records(moving, now)
        for rule, group in moving:
            key = (rule.id, group.key)
            event = self._move(rule, group, seen.get(key, ()), now)
            if event is not None:
                output.alerts.append((rule.id, event))
            if rule.organisation_id in recorded and usage.rechecked(rule, group, now):
                group.due_ms = min(group.due_ms or now + usage.RECHECK_MS, now + usage.RECHECK_MS)
            if not lifecycle.removable(rule.spec.condition, group, now):
                output.groups.append(group)
            elif key in stored:
                output.dropped.append(key)
        return output

    def _take_records(self, moving: Sequence[tuple[Rule, Group]], now: int) -> set[int]:
        """Give the threshold groups about to move their endpoints' data usage records of
        the current period (read in one go per organisation); the organisations that have
        any records this month (only their groups are rechecked: one without never had its
        provider send them)."""
        wanted = [(rule, group) for rule, group in moving if usage.reads_records(rule, group)]
        by_organisation: dict[int, set[int]] = defaultdict(set)
        for rule, group in wanted:
            by_organisation[rule.organisation_id].add(int(group.key))
        first_day = conditions.period_start("month", now) // conditions.DAY_MS
        last_day = now // conditions.DAY_MS
        repository = self.store.rules
        recorded = {
            organisation_id
            for organisation_id in by_organisation
            if repository.has_usage(organisation_id, first_day)
        }
        found = {
            organisation_id: repository.usage_days(
                organisation_id, sorted(by_organisation[organisation_id]), first_day, last_day
            )
            for organisation_id in recorded
        }
        for rule, group in wanted:
            if rule.organisation_id in found:
                records = found[rule.organisation_id].get(int(group.key), {})
                conditions.take_records(rule.spec.condition, group.state, records, now)
        return recorded

    def _move(
        self, rule: Rule, group: Group, events: Sequence[conditions.Seen], now: int
    ) -> NewEvent | None:
        """Fold ``events`` into ``group`` and move its lifecycle to ``now``; the alert event
        of a transition."""
        condition = rule.spec.condition
        for event in events:
            conditions.observe(condition, group.state, event)
        transition, measured = lifecycle.evaluate(
            condition, group, now, rule.spec.hold_down_ms, seen=bool(events)
        )
        if transition is None:
            return None
        return alerts.to_event(
            self.writer, rule, group, transition, measured, self._name(rule), now
        )

    def _name(self, rule: Rule) -> str:
        name = self._names.get(rule.organisation_id)
        if name is None:
            organisation = self.store.organisations.get(rule.organisation_id)
            name = organisation.name if organisation is not None else ""
            self._names[rule.organisation_id] = name
        return name

    def tick(self) -> bool:
        """Blocking, the timer pass: evaluate the groups due now, the position kept; False
        if another step moved it meanwhile (nothing written)."""
        position = self._recorded()
        output = self.evaluate([])
        if not output:
            self._stamp = output.stamp  # nothing changed: the groups kept are still true
            return True
        return self.advance(position, position, output)

    # -- running ----------------------------------------------------------------
    async def run_once(self) -> int:
        """Evaluate up to the end of the log, then the groups due (tests drive it); how
        many log entries."""
        done = await self.follower.run_once()
        await self._threads.run(self.tick)
        return done

    def catch_up(self) -> int:
        """Blocking, outside any event loop (tests): ``run_once()``."""
        return asyncio.run(self.run_once())

    async def aclose(self) -> None:
        await self._threads.aclose()


@contextlib.asynccontextmanager
async def in_process(
    store: Store,
    catalog: Catalog,
    ids: IdGenerator,
    loops: Loops,
    *,
    poll_seconds: float,
    max_groups: int,
    enabled: bool = True,
) -> AsyncIterator[RuleEvaluator | None]:
    """Evaluate the rules inside ``herald serve`` or ``herald worker`` for as long as the
    block lasts: a loop (``rules`` in ``/ready``) that survives any failure, backing off.
    Not ``enabled`` (``HERALD_RULES_ENABLED=false``): another process evaluates them."""
    if not enabled:
        yield None
        return
    evaluator = RuleEvaluator(store, catalog, ids, max_groups=max_groups)
    task = asyncio.create_task(run_forever(loops, "rules", evaluator.run_once, poll_seconds))
    try:
        yield evaluator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await evaluator.aclose()

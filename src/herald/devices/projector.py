"""Keeps the device states current: a cursor over the log, as delivery handlers have.

A ``herald.follower.Follower`` whose cursor is the projection's: each step reads the log
after it (on PostgreSQL only up to the safe watermark, so no event is ever skipped), folds
the events into the states of the endpoints they name, and writes the changed states with
the new cursor in one transaction. The fold is order-free and idempotent
(``state.apply``), so a step repeated after a crash, or run by two processes at once (the
cursor is compare-and-set), changes nothing it should not. ``run_once()`` projects up to
the end of the log; ``herald serve`` runs the follower's loop, which survives any failure.
Given a catalogue and an id generator, a step also writes the status changes of the
organisations that asked for them (``herald.devices.changes``), in its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from herald.catalog import Catalog
from herald.devices import changes
from herald.devices import state as device_state
from herald.events.types import LogEntry
from herald.events.writer import EventWriter
from herald.follower import Follower, LogReader
from herald.ids import IdGenerator
from herald.loops import Loops
from herald.model import NewEvent
from herald.store import Store
from herald.store.device_records import DeviceRow
from herald.threads import Threads, offer_gil
from herald.timefmt import now_ms

CHUNK = 5000  # log entries folded per transaction (an endpoint's events in it: one write)
CACHE = 100_000  # endpoint states kept between steps, as stored (a few hundred bytes each)
Key = tuple[int, str]


def parse(entries: Sequence[LogEntry]) -> list[tuple[Key, device_state.Effect]]:
    """What the log entries that name an endpoint do to its state, with its key
    (organisation, endpoint)."""
    parsed: list[tuple[Key, device_state.Effect]] = []
    for entry in entries:
        if entry.type_id in changes.TYPES:  # Herald's own word on a state, not the device's
            continue
        event = device_state.device_event(
            entry.event_id, entry.type_id, entry.body, entry.timestamp_ms
        )
        key = device_state.endpoint_key(event.record) if event is not None else None
        if event is not None and key is not None:
            parsed.append(((entry.organisation_id, key), device_state.effect(event)))
    return parsed


def fold(
    stored: Mapping[Key, device_state.DeviceState | None],
    events: Sequence[tuple[Key, device_state.Effect]],
    watched: Callable[[Key, device_state.Effect], bool] | None = None,
) -> tuple[dict[Key, device_state.DeviceState], list[changes.Change]]:
    """The states ``events`` change, given the ``stored`` states of the endpoints they name
    (None: no row yet), and the status changes of the ``watched`` endpoints' events, each
    event's in log order. Each endpoint's state is copied once and folded in place."""
    working: dict[Key, _Working] = {}
    found: list[changes.Change] = []
    for index, (at, event) in enumerate(events):
        offer_gil(index)  # requests' threads get their turns during a long fold
        state = working.get(at)
        if state is None:
            state = working[at] = _Working(stored.get(at))
        if watched is None or not watched(at, event):
            state.merge(event)
            continue
        old = device_state.status(state.view())
        state.merge(event)
        new = device_state.status(after := state.view())
        if old != new:
            endpoint = device_state.endpoint(after)
            found.append(changes.Change(at[0], at[1], old, new, event, endpoint))
    folded = {at: state.view() for at, state in working.items()}
    return {at: new for at, new in folded.items() if new != stored.get(at)}, found


class _Working:
    """One endpoint's state being folded: its own copy, changed in place."""

    __slots__ = ("last", "registers", "times")

    def __init__(self, kept: device_state.DeviceState | None) -> None:
        self.last = kept.last_event_ms if kept else 0
        self.times: dict[str, int] = dict(kept.times) if kept else {}
        self.registers: dict[str, device_state.Register] = dict(kept.registers) if kept else {}

    def merge(self, event: device_state.Effect) -> None:
        device_state.merge(self.times, self.registers, event)
        self.last = max(self.last, event.timestamp_ms)

    def view(self) -> device_state.DeviceState:
        """The state as it stands (sharing this copy's dicts)."""
        return device_state.DeviceState(self.last, self.times, self.registers)


def to_row(
    organisation_id: int, key: str, folded: device_state.DeviceState, at_ms: int
) -> DeviceRow:
    """The stored row of a state, with the columns lists filter on."""
    endpoint = device_state.endpoint(folded)
    network = device_state.value(folded, "network") or {}
    country = network.get("country") or {}
    name = endpoint.get("name")
    return DeviceRow(
        organisation_id=organisation_id,
        endpoint_key=key,
        endpoint_id=int(key) if key.isdigit() else None,
        endpoint_name=name if isinstance(name, str) else (None if key.isdigit() else key),
        status=int(device_state.status(folded)),
        country=country.get("name") if isinstance(country.get("name"), str) else None,
        operator=network.get("name") if isinstance(network.get("name"), str) else None,
        last_event_ms=folded.last_event_ms,
        updated_ms=at_ms,
        state=device_state.dumps(folded).decode(),
    )


@dataclass(frozen=True, slots=True)
class Folded:
    """What a step writes with the projection's cursor: the changed states' rows, the
    status-change events and every state it read or wrote, as stored."""

    rows: list[DeviceRow]
    written: list[NewEvent]
    texts: dict[Key, str | None]


class DeviceProjector:
    """Folds the log into the device states; one per process. A ``Follower`` of the log
    whose cursor (``position``/``advance``) is the projection's, moved with the states.

    It keeps the states it last read or wrote, as stored (text: no objects for the garbage
    collector to walk), for up to ``cache`` endpoints, the least recently folded going first,
    so that a step reads from the store only the states of endpoints new to it. They are
    the stored states for as long as the projection's position is the one its own last step
    wrote: a step that finds it elsewhere (another process folded, a rebuild reset it) or
    whose write failed starts again from an empty cache.
    """

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.2,
        chunk: int = CHUNK,
        cache: int = CACHE,
        catalog: Catalog | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        """Without ``catalog`` and ``ids`` it writes no status-change events (a rebuild)."""
        self.store = store
        self.poll_seconds = poll_seconds
        self.cache = cache
        self.catalog = catalog
        self.ids = ids
        # a rebuild (no ids) writes no events: its writer never leases a node id
        self.writer = EventWriter(store, ids or IdGenerator(store.nodes.lease), catalog)
        self._organisations: dict[int, str] = {}  # that want status changes, by id
        self._threads = Threads("herald-devices", 1)
        self._stored: OrderedDict[Key, str | None] = OrderedDict()
        self._position: tuple[int, int] | None = None  # the one ``_stored`` is true at
        reader = LogReader(store, self._threads.run)
        self.follower = Follower(reader, self, self._fold, batch=chunk)

    @property
    def chunk(self) -> int:
        """Log entries folded per transaction."""
        return self.follower.batch

    @chunk.setter
    def chunk(self, chunk: int) -> None:
        self.follower.batch = chunk

    # -- the cursor (run in the store's thread) ---------------------------------
    def position(self) -> int:
        """Where the projection is; the cache is forgotten if it is not where this
        projector's last step left it."""
        position = self.store.devices.position()
        if position != self._position:
            self._stored.clear()
        self._position = position
        return position[0]

    def advance(self, after_seq: int, upto_seq: int, output: Folded) -> bool:
        """Write the folded states and change events with the cursor's move (compare-and-set)."""
        reset_from = self._position[1] if self._position else 0
        self._position = None  # until this step's write is known to have happened
        saving = self.store.devices.saving(after_seq, upto_seq, output.rows)
        if not self.writer.append_with(output.written, saving):
            self._stored.clear()
            return False
        self._position = (upto_seq, reset_from)
        texts = output.texts
        texts.update(((row.organisation_id, row.endpoint_key), row.state) for row in output.rows)
        self._keep(texts)
        return True

    # -- the fold -----------------------------------------------------------------
    async def _fold(self, entries: list[LogEntry]) -> Folded:
        return await self._threads.run(self.fold, entries)

    def fold(self, entries: list[LogEntry]) -> Folded:
        """Blocking: what ``entries`` change, from the states as stored."""
        events = parse(entries)
        texts = self._texts({key for key, _ in events})
        stored = {key: device_state.loads(text) if text else None for key, text in texts.items()}
        at = now_ms()
        changed, found = fold(stored, events, self._watched(entries))
        rows = [
            to_row(organisation_id, key, new, at) for (organisation_id, key), new in changed.items()
        ]
        return Folded(rows, self._change_events(found, at), texts)

    def _texts(self, keys: set[Key]) -> dict[Key, str | None]:
        """The stored states of ``keys`` as stored (None: no row), from the cache or the
        store."""
        found = {key: self._stored[key] for key in keys if key in self._stored}
        missing = sorted(keys - found.keys())
        if missing:
            rows = self.store.devices.states(missing)
            for key in missing:
                row = rows.get(key)
                found[key] = row.state if row is not None else None
        return found

    def _keep(self, texts: dict[Key, str | None]) -> None:
        """Remember ``texts`` as stored, forgetting the least recently folded beyond
        ``cache``."""
        kept = self._stored
        for key, text in texts.items():
            kept[key] = text
            kept.move_to_end(key)
        while len(kept) > self.cache:
            kept.popitem(last=False)

    def _watched(
        self, entries: Sequence[LogEntry]
    ) -> Callable[[Key, device_state.Effect], bool] | None:
        """Which folded events may emit a change: of an organisation that asked, and past
        the last rebuild's end of the log; None: none may."""
        if self.catalog is None or self.ids is None:
            return None
        quiet_until, self._organisations = self.store.devices.event_settings()
        if not self._organisations:
            return None
        quiet = {entry.event_id for entry in entries if entry.seq <= quiet_until}
        wanted = self._organisations
        return lambda at, event: at[0] in wanted and event.event_id not in quiet

    def _change_events(self, found: list[changes.Change], at: int) -> list[NewEvent]:
        if not found or self.catalog is None or self.ids is None:
            return []
        built = [
            changes.to_event(change, self._organisations[change.organisation_id], self.writer, at)
            for change in found
        ]
        return [event for event in built if event is not None]

    async def step(self) -> int | None:
        """Fold the next chunk of the log: how many entries, None if another process moved
        the cursor meanwhile (nothing written; the next step reads from there)."""
        count, _ = await self.follower.step()
        return count

    async def run_once(self) -> int:
        """Fold the log up to its (readable) end off the event loop, one chunk per
        transaction: cancelled, a long catch-up (the first start on a large log) stops
        within a chunk. How many entries (tests drive it)."""
        return await self.follower.run_once()

    def catch_up(self) -> int:
        """Blocking, outside any event loop (a rebuild, tests): ``run_once()``."""
        return asyncio.run(self.run_once())

    async def aclose(self) -> None:
        await self._threads.aclose()


@contextlib.asynccontextmanager
async def in_process(
    store: Store,
    poll_seconds: float,
    loops: Loops,
    *,
    enabled: bool = True,
    catalog: Catalog | None = None,
    ids: IdGenerator | None = None,
) -> AsyncIterator[DeviceProjector | None]:
    """Keep the device states current inside ``herald serve`` for as long as the block lasts:
    a loop (``device_state`` in ``/ready``) that survives any failure, backing off.
    Not ``enabled`` (``HERALD_DEVICE_STATE_ENABLED=false``): another process keeps them."""
    if not enabled:
        yield None
        return
    projector = DeviceProjector(store, poll_seconds=poll_seconds, catalog=catalog, ids=ids)
    task = asyncio.create_task(projector.follower.run(loops, "device_state", poll_seconds))
    try:
        yield projector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await projector.aclose()  # waits for the chunk in hand, before the store closes

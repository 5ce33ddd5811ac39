"""Keeps the device states current: a cursor over the log, as delivery handlers have.

Each step reads the log after the projection's cursor (on PostgreSQL only up to the safe
watermark, so no event is ever skipped), folds the events into the states of the endpoints
they name, and writes the changed states with the new cursor in one transaction. The fold
is order-free and idempotent (``state.apply``), so a step repeated after a crash, or run by
two processes at once (the cursor is compare-and-set), changes nothing it should not.
``run_once()`` projects up to the end of the log; ``herald serve`` runs it in a loop that
survives any failure (``loops.run_forever``). Given a catalogue and an id generator, a step
also writes the status changes of the organisations that asked for them
(``herald.devices.changes``), in its transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

from herald import metrics
from herald.catalog import Catalog
from herald.devices import changes
from herald.devices import state as device_state
from herald.ids import IdGenerator
from herald.loops import Loops, run_forever
from herald.model import NewEvent
from herald.store import Store
from herald.store.base import LogEntry
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


class DeviceProjector:
    """Folds the log into the device states; one per process.

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
        self.chunk = chunk
        self.cache = cache
        self.catalog = catalog
        self.ids = ids
        self._organisations: dict[int, str] = {}  # that want status changes, by id
        self._threads = Threads("herald-devices", 1)
        self._stored: OrderedDict[Key, str | None] = OrderedDict()
        self._position: tuple[int, int] | None = None  # the one ``_stored`` is true at

    def step(self) -> int | None:
        """Fold the next chunk of the log: how many entries, None if another process moved
        the cursor meanwhile (nothing written; the next step reads from there)."""
        position = self.store.device_position()
        if position != self._position:
            self._stored.clear()
        self._position = None  # until this step's write is known to have happened
        cursor = position[0]
        entries = self.store.read_log(cursor, self.chunk)
        if not entries:
            self._position = position
            return 0
        events = parse(entries)
        texts = self._texts({key for key, _ in events})
        stored = {key: device_state.loads(text) if text else None for key, text in texts.items()}
        at = now_ms()
        changed, found = fold(stored, events, self._watched(entries))
        rows = [
            to_row(organisation_id, key, new, at) for (organisation_id, key), new in changed.items()
        ]
        written = self._change_events(found, at)
        if not self.store.save_device_states(cursor, entries[-1].seq, rows, written):
            self._stored.clear()
            return None
        self._position = (entries[-1].seq, position[1])
        texts.update(((row.organisation_id, row.endpoint_key), row.state) for row in rows)
        self._keep(texts)
        if written:
            metrics.EVENTS_INGESTED.labels("herald").inc(len(written))
        return len(entries)

    def _texts(self, keys: set[Key]) -> dict[Key, str | None]:
        """The stored states of ``keys`` as stored (None: no row), from the cache or the
        store."""
        found = {key: self._stored[key] for key in keys if key in self._stored}
        missing = sorted(keys - found.keys())
        if missing:
            rows = self.store.device_states(missing)
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
        quiet_until, self._organisations = self.store.device_event_settings()
        if not self._organisations:
            return None
        quiet = {entry.event_id for entry in entries if entry.seq <= quiet_until}
        wanted = self._organisations
        return lambda at, event: at[0] in wanted and event.event_id not in quiet

    def _change_events(self, found: list[changes.Change], at: int) -> list[tuple[NewEvent, int]]:
        if not found or self.catalog is None or self.ids is None:
            return []
        built = [
            changes.to_event(change, self._organisations[change.organisation_id], self.catalog, at)
            for change in found
        ]
        events = [event for event in built if event is not None]
        return list(zip(events, self.ids.next_ids(len(events)), strict=True))

    def catch_up(self) -> int:
        """Fold the log up to its (readable) end; how many entries."""
        done = 0
        while (count := self.step()) != 0:
            done += count or 0
        return done

    async def run_once(self) -> int:
        """Fold the log up to its end off the event loop, one chunk per call into the
        store's thread: cancelled, a long catch-up (the first start on a large log) stops
        within a chunk. How many entries (tests drive it)."""
        done = 0
        while (count := await self._threads.run(self.step)) != 0:
            done += count or 0
        return done

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
    task = asyncio.create_task(run_forever(loops, "device_state", projector.run_once, poll_seconds))
    try:
        yield projector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await projector.aclose()  # waits for the chunk in hand, before the store closes

"""Keeps the device states current: a cursor over the log, as delivery handlers have.

Each step reads the log after the projection's cursor (on PostgreSQL only up to the safe
watermark, so no event is ever skipped), folds the events into the states of the endpoints
they name, and writes the changed states with the new cursor in one transaction. The fold
is order-free and idempotent (``state.apply``), so a step repeated after a crash, or run by
two processes at once (the cursor is compare-and-set), changes nothing it should not.
``run_once()`` projects up to the end of the log; ``herald serve`` runs it in a loop that
survives any failure (``loops.run_forever``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from herald.devices import state as device_state
from herald.loops import Loops, run_forever
from herald.store import Store
from herald.store.base import LogEntry
from herald.store.device_records import DeviceRow
from herald.threads import Threads
from herald.timefmt import now_ms

CHUNK = 1000  # log entries folded per transaction
Key = tuple[int, str]


def parse(entries: Sequence[LogEntry]) -> list[tuple[Key, device_state.DeviceEvent]]:
    """The log entries that name an endpoint, with its key (organisation, endpoint)."""
    parsed: list[tuple[Key, device_state.DeviceEvent]] = []
    for entry in entries:
        event = device_state.device_event(entry.event_id, entry.type_id, entry.body)
        key = device_state.endpoint_key(event.record) if event is not None else None
        if event is not None and key is not None:
            parsed.append(((entry.organisation_id, key), event))
    return parsed


def fold(
    rows: dict[Key, DeviceRow], events: Sequence[tuple[Key, device_state.DeviceEvent]], at_ms: int
) -> list[DeviceRow]:
    """The rows ``events`` change, given the stored ``rows`` of the endpoints they name."""
    states: dict[Key, device_state.DeviceState] = {}
    for at, event in events:
        if at not in states:
            kept = rows.get(at)
            states[at] = device_state.loads(kept.state) if kept else device_state.DeviceState()
        states[at] = device_state.apply(states[at], event)
    changed: list[DeviceRow] = []
    for (organisation_id, key), folded in states.items():
        row = to_row(organisation_id, key, folded, at_ms)
        kept = rows.get((organisation_id, key))
        if kept is None or kept.state != row.state:
            changed.append(row)
    return changed


def to_row(
    organisation_id: int, key: str, folded: device_state.DeviceState, at_ms: int
) -> DeviceRow:
    """The stored row of a state, with the columns lists filter on."""
    endpoint = device_state.value(folded, "endpoint") or {}
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
    """Folds the log into the device states; one per process."""

    def __init__(self, store: Store, *, poll_seconds: float = 0.2, chunk: int = CHUNK) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.chunk = chunk
        self._threads = Threads("herald-devices", 1)

    def step(self) -> int | None:
        """Fold the next chunk of the log: how many entries, None if another process moved
        the cursor meanwhile (nothing written; the next step reads from there)."""
        cursor = self.store.device_cursor()
        entries = self.store.read_log(cursor, self.chunk)
        if not entries:
            return 0
        events = parse(entries)
        rows = self.store.device_states(sorted({key for key, _ in events}))
        changed = fold(rows, events, now_ms())
        if not self.store.save_device_states(cursor, entries[-1].seq, changed):
            return None
        return len(entries)

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
    store: Store, poll_seconds: float, loops: Loops, *, enabled: bool = True
) -> AsyncIterator[DeviceProjector | None]:
    """Keep the device states current inside ``herald serve`` for as long as the block lasts:
    a loop (``device_state`` in ``/ready``) that survives any failure, backing off.
    Not ``enabled`` (``HERALD_DEVICE_STATE_ENABLED=false``): another process keeps them."""
    if not enabled:
        yield None
        return
    projector = DeviceProjector(store, poll_seconds=poll_seconds)
    task = asyncio.create_task(run_forever(loops, "device_state", projector.run_once, poll_seconds))
    try:
        yield projector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await projector.aclose()  # waits for the chunk in hand, before the store closes

"""Keeps the device states current: one owner per store, folding in memory, writing behind.

One process at a time keeps the states: the one holding the lease on the projection's row
(``store.devices.claim``, renewed with each write; the lease of an owner that died or was
cut off runs out after ``LEASE_SECONDS`` and another process takes it). The owner is a
``herald.follower.Follower`` of the log whose cursor is in memory: each step folds the next
events of the log into the states in memory (order-free and idempotent,
``herald.devices.fold``), and the changed states are written behind in groups (when a step
reaches the end of the log, and at least every ``flush_seconds`` during a long catch-up)
with the position they include, in one transaction, compare-and-set on that position and
on the lease. A kill -9 of the owner loses no state: the next owner starts from the written
position and folds the rest of the log again.

The events this process appends itself (``EventWriter.observe``) are folded as they were
built: the owner reads only their positions in the log (``store.devices.log_positions``),
not their records. Others' events it reads from the log and decodes for the few fields the
state needs (``herald.devices.decode``). Given a catalogue and an id generator, the owner
also writes the status changes of the organisations that asked for them
(``herald.devices.changes``) in the transaction of the states, each under an id of its own
(a change folded again after a crash is the same event, stored once).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence

from herald.catalog import Catalog
from herald.devices import changes
from herald.devices import state as device_state
from herald.devices.fold import Key, fold, parse, to_row
from herald.events.types import LogEntry, LogScan
from herald.events.writer import Appended, EventWriter
from herald.follower import Follower, LogReader, read_batch
from herald.ids import IdGenerator
from herald.loops import Loops
from herald.model import NewEvent
from herald.store import Store, StoreError, StoreUnavailable
from herald.store.log import Horizon
from herald.store.nodes import holder_name
from herald.threads import Threads
from herald.timefmt import now_ms

CHUNK = 5000  # log entries read and folded per step
CACHE = 100_000  # endpoint states kept as written (a few hundred bytes each)
FLUSH_SECONDS = 0.25  # the longest a catch-up folds before writing what it folded
LEASE_SECONDS = 5.0  # how long an owner that stops renewing keeps the states from others
RENEW_SECONDS = 0.25  # an idle owner renews its lease, and the states' as-of time, this often
APPENDED = 50_000  # events this process appended, kept for the fold until it reads them
INSTANTS = 64  # read times waiting for older write transactions to end (PostgreSQL)


class DeviceProjector:
    """Keeps the device states while it holds their lease: the cursor (``position`` /
    ``advance``) of a ``Follower`` of the log, folding in memory and writing behind.

    Besides the states folded since its last write, it keeps the states as written (text: no
    objects for the garbage collector to walk) for up to ``cache`` endpoints, the least
    recently folded going first, so that a step reads from the store only the states of
    endpoints new to it. They are the stored states for as long as the projection's
    position is the one its own last write left: an owner that finds it elsewhere when it
    takes the lease (another process folded, a rebuild reset it) or whose write failed
    starts again from what is written.
    """

    def __init__(
        self,
        store: Store,
        *,
        poll_seconds: float = 0.2,
        flush_seconds: float = FLUSH_SECONDS,
        chunk: int = CHUNK,
        cache: int = CACHE,
        lease_seconds: float = LEASE_SECONDS,
        catalog: Catalog | None = None,
        ids: IdGenerator | None = None,
    ) -> None:
        """Without ``catalog`` and ``ids`` it writes no status-change events (a rebuild)."""
        self.store = store
        self.poll_seconds = poll_seconds
        self.flush_seconds = flush_seconds
        self.cache = cache
        self.lease_ms = int(lease_seconds * 1000)
        self._renew_seconds = min(RENEW_SECONDS, lease_seconds / 3)
        self.catalog = catalog
        self.ids = ids
        self.owner = holder_name()
        # a rebuild (no ids) writes no events: its writer never leases a node id
        self.writer = EventWriter(store, ids or IdGenerator(store.nodes.lease), catalog)
        self.writer.observe(self.appended)  # its own change events need no reading either
        self._organisations: dict[int, str] = {}  # that want status changes, by id
        self._threads = Threads("herald-devices", 1)
        self._stored: OrderedDict[Key, str | None] = OrderedDict()  # as written
        self._dirty: dict[Key, device_state.DeviceState] = {}  # folded, not yet written
        self._found: list[changes.Change] = []  # status changes folded, not yet written
        self._written: tuple[int, int] | None = None  # (position, quiet until) while owner
        self._last: tuple[int, int] | None = None  # what our last write left (``_stored``'s)
        self._folded = 0  # the log position folded up to, in memory
        self._as_of_ms = 0  # every event committed before it is folded
        self._as_of_written = 0  # the as-of time last written
        self._read_ms: int | None = None  # the as-of time the last read, folded, gives
        self._instants: list[tuple[int, int]] = []  # (time, begun_below): not yet as-of
        self._at_end = False  # the last read reached the end of the log
        self._renew_at = 0.0  # monotonic: when to renew the lease (not held: claim it)
        self._flushed_at = 0.0  # monotonic: the last write
        self._appended: OrderedDict[int, NewEvent] = OrderedDict()  # by id, not yet folded
        self._appended_lock = threading.Lock()
        reader = LogReader(store, self._threads.run)
        self.follower = Follower(reader, self, self._entries, batch=chunk, read=self._read)

    @property
    def chunk(self) -> int:
        """Log entries read and folded per step."""
        return self.follower.batch

    @chunk.setter
    def chunk(self, chunk: int) -> None:
        self.follower.batch = chunk

    @property
    def owns(self) -> bool:
        """Whether this process keeps the states now."""
        return self._written is not None

    # -- the events appended here (the writer's observer: any thread) ------------
    def appended(self, events: Sequence[NewEvent], done: Appended) -> None:
        """Keep the events this process appended (the new ones) for the fold, while it
        owns the states."""
        if self._written is None:
            return
        with self._appended_lock:
            kept = self._appended
            for event, event_id, new in zip(events, done.ids, done.fresh, strict=True):
                if new:
                    kept[event_id] = event
            while len(kept) > APPENDED:
                kept.popitem(last=False)

    # -- the lease and the cursor (run in the projector's thread) ------------------
    def position(self) -> int:
        """The log position folded up to; the lease taken or renewed when due."""
        if time.monotonic() >= self._renew_at:
            self._hold()
        return self._folded

    def _hold(self) -> None:
        """Renew the lease (a write of what is folded) or, not held, try to take it."""
        self._renew_at = time.monotonic() + self._renew_seconds
        if self._written is not None and self.flush():
            return
        written = self.store.devices.claim(self.owner, self.lease_ms)
        if written is None:
            return
        if written != self._last:
            self._stored.clear()  # another owner wrote since, or a rebuild started again
        self._written = self._last = written
        self._folded = written[0]
        self._flushed_at = time.monotonic()

    def _lose(self) -> None:
        """Forget everything not written: this process no longer keeps the states."""
        self._written = None
        self._dirty.clear()
        self._found.clear()
        self._as_of_ms = self._as_of_written = 0
        with self._appended_lock:
            self._appended.clear()

    def _read(self, after_seq: int, limit: int) -> LogScan:
        """The next entries of the log after ``after_seq``: as appended here if they all
        were, else as read from the log; none if another process keeps the states."""
        if self._written is None:
            return LogScan([], after_seq, True)
        began = now_ms()
        horizon = self.store.log.horizon()
        scan = self._read_appended(after_seq, limit) if self._appended else None
        if scan is None:
            scan = read_batch(self.store, after_seq, limit)
        self._at_end = scan.complete
        self._read_ms = self._as_of(began, horizon) if scan.complete else None
        if scan.complete and scan.position == after_seq and self._read_ms is not None:
            self._as_of_ms = self._read_ms  # nothing new: the read itself is the fold
            if self._as_of_ms > self._as_of_written:
                self.flush()  # readers learn it now, not at the next renewal
        return scan

    def _as_of(self, began: int, horizon: Horizon) -> int | None:
        """The latest instant (up to ``began``) every event committed before which a read
        that started after ``horizon`` and reached the end of the log holds: an instant
        counts once every write transaction that had begun by then has ended (on PostgreSQL
        an open one holds its successors' events back). None: no instant yet."""
        instants = self._instants
        if (instants and instants[-1][1] == horizon.begun_below) or len(instants) >= INSTANTS:
            instants[-1] = (began, max(instants[-1][1], horizon.begun_below))
        else:
            instants.append((began, horizon.begun_below))
        ended = [at for at, begun in instants if begun <= horizon.ended_below]
        if not ended:
            return None
        self._instants = [(at, begun) for at, begun in instants if begun > horizon.ended_below]
        return max(ended)

    def _read_appended(self, after_seq: int, limit: int) -> LogScan | None:
        """The entries after ``after_seq`` from their positions in the log and the events
        as appended here; None if any was appended by another process."""
        positions = self.store.devices.log_positions(after_seq, limit)
        with self._appended_lock:
            built = [self._appended.get(event_id) for _, event_id in positions]
        entries = []
        for (seq, event_id), event in zip(positions, built, strict=True):
            if event is None:
                return None
            entries.append(
                LogEntry(
                    seq, event.organisation_id, event.type_id, b"", event_id, event.timestamp_ms
                )
            )
        position = positions[-1][0] if positions else after_seq
        return LogScan(entries, position, len(positions) < limit)

    @staticmethod
    async def _entries(entries: list[LogEntry]) -> list[LogEntry]:
        return entries  # folded by ``advance``, with the position, in one go

    def advance(self, after_seq: int, upto_seq: int, output: list[LogEntry]) -> bool:
        """Fold ``output`` (the entries after ``after_seq`` up to ``upto_seq``) into the
        states in memory; written at the end of the log, or if the last write is older
        than ``flush_seconds``. False if this process no longer keeps the states."""
        if self._written is None or after_seq != self._folded:
            return False
        self._fold(output)
        self._folded = upto_seq
        if self._read_ms is not None:
            self._as_of_ms = self._read_ms
        if self._at_end or time.monotonic() - self._flushed_at >= self.flush_seconds:
            return self.flush()
        return True

    def flush(self) -> bool:
        """Write the states folded since the last write, their status changes and the
        position, renewing the lease, in one transaction (compare-and-set on the position
        and the lease); False, all that was not written forgotten, if either is no longer
        this process's."""
        if self._written is None:
            return False
        at = now_ms()
        rows = [to_row(org, key, state, at) for (org, key), state in self._dirty.items()]
        events = self._change_events(self._found, at)
        lease = (self.owner, self.lease_ms, self._as_of_ms)
        saving = self.store.devices.saving(self._written[0], self._folded, rows, lease)
        # without events, a machine's crash may undo the write: the log is folded again
        if not self.writer.append_with(events, saving, durable=bool(events)):
            self._lose()
            return False
        self._written = self._last = (self._folded, self._written[1])
        self._as_of_written = lease[2]
        self._keep({(row.organisation_id, row.endpoint_key): row.state for row in rows})
        self._dirty.clear()
        self._found.clear()
        self._flushed_at = time.monotonic()
        self._renew_at = self._flushed_at + self._renew_seconds
        return True

    # -- the fold -----------------------------------------------------------------
    def _fold(self, entries: list[LogEntry]) -> None:
        with self._appended_lock:
            pop = self._appended.pop
            built = {e.event_id: event for e in entries if (event := pop(e.event_id, None))}
        events = parse(entries, built)
        current = self._states({key for key, _ in events})
        changed, found = fold(current, events, self._watched(entries))
        self._dirty.update(changed)
        self._found += found

    def _states(self, keys: set[Key]) -> dict[Key, device_state.DeviceState | None]:
        """The current states of ``keys`` (None: none yet): folded, or as written."""
        dirty = self._dirty
        found: dict[Key, device_state.DeviceState | None] = {
            key: dirty[key] for key in keys if key in dirty
        }
        texts = self._texts(keys - found.keys())
        found.update(
            (key, device_state.loads(text) if text else None) for key, text in texts.items()
        )
        return found

    def _texts(self, keys: set[Key]) -> dict[Key, str | None]:
        """The written states of ``keys`` (None: no row), from the cache or the store."""
        found = {key: self._stored[key] for key in keys if key in self._stored}
        missing = sorted(keys - found.keys())
        if missing:
            rows = self.store.devices.states(missing)
            read = {key: row.state if (row := rows.get(key)) else None for key in missing}
            self._keep(read)
            found.update(read)
        return found

    def _keep(self, texts: dict[Key, str | None]) -> None:
        """Remember ``texts`` as written, forgetting the least recently folded beyond
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

    # -- driving it -----------------------------------------------------------------
    async def step(self) -> int | None:
        """Fold the next chunk of the log and write it: how many entries, None if another
        process keeps the states or moved the cursor meanwhile (nothing written)."""
        count, _ = await self.follower.step()
        if count and not await self._threads.run(self.flush):
            return None
        return count

    async def run_once(self) -> int:
        """Take the lease, fold the log up to its (readable) end and write it, then give the
        lease up (a rebuild, tests): how many entries. StoreUnavailable if another process
        keeps the states."""
        await self._threads.run(self._take)
        try:
            return await self.follower.run_once()
        finally:
            await self._threads.run(self._give_up)

    def catch_up(self) -> int:
        """Blocking, outside any event loop (a rebuild, tests): ``run_once()``."""
        return asyncio.run(self.run_once())

    def _take(self) -> None:
        self._hold()
        if self._written is None:
            owner = self.store.devices.owner() or "another process"
            raise StoreUnavailable(f"the device states are kept by {owner}")

    def _give_up(self) -> None:
        """Write what is folded and give the lease up."""
        if self._written is not None:
            self.flush()
            self.store.devices.release(self.owner)
        self._lose()

    async def aclose(self) -> None:
        """Write what is folded, give the lease up and stop (waits for the step in hand)."""
        with contextlib.suppress(StoreError):
            await self._threads.run(self._give_up)
        await self._threads.aclose()


@contextlib.asynccontextmanager
async def in_process(
    store: Store,
    poll_seconds: float,
    loops: Loops,
    *,
    enabled: bool = True,
    lease_seconds: float = LEASE_SECONDS,
    catalog: Catalog | None = None,
    ids: IdGenerator | None = None,
    writer: EventWriter | None = None,
) -> AsyncIterator[DeviceProjector | None]:
    """Keep the device states current inside ``herald serve`` or ``herald worker`` for as
    long as the block lasts, whenever this process holds their lease: a loop
    (``device_state`` in ``/ready``) that survives any failure, backing off. The events
    ``writer`` (the process's) appends are folded as built. An owner that stops renewing
    keeps the states from the others for ``lease_seconds``. Not ``enabled``
    (``HERALD_DEVICE_STATE_ENABLED=false``): another process keeps them."""
    if not enabled:
        yield None
        return
    projector = DeviceProjector(
        store, poll_seconds=poll_seconds, lease_seconds=lease_seconds, catalog=catalog, ids=ids
    )
    if writer is not None:
        writer.observe(projector.appended)
    task = asyncio.create_task(projector.follower.run(loops, "device_state", poll_seconds))
    try:
        yield projector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await projector.aclose()  # writes what is folded, before the store closes

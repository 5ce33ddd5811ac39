"""Ids that reveal nothing across organisations.

Event ids are 64-bit integers ordered by time (millisecond time, node, slot). Handler,
quarantine, token, attempt-log and replay ids are 53 bits (millisecond time, slot),
integers JavaScript holds exactly. In all, the slot is drawn at random, not counted.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
NODE_BITS = 10
SEQUENCE_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
SLOTS = MAX_SEQUENCE + 1  # ids per node and millisecond
MAX_PUBLIC_ID = 2**53 - 1  # Number.MAX_SAFE_INTEGER


class IdGenerator:
    """Snowflake-style generator: unique per node, ordered by millisecond.

    Within a millisecond the low 12 bits (the slot) are drawn at random without
    replacement, not counted: a counter shared by every organisation's events told a
    tenant how many other events the node wrote between two of its own in that
    millisecond. One call's ids increase (a batch keeps its order), and an id is never in
    an earlier millisecond than one returned before; two calls' ids within one millisecond
    are in random order. A millisecond's 4096 slots used up, the next millisecond is
    borrowed (as before).

    ``node_id`` comes from the store's lease (``store.nodes.lease``), so that no two
    processes writing to one store share it; there is no fallback (a process id is not
    unique modulo 1024). Given as the lease itself (a function), it is taken on first use,
    and a failure to lease (a read-only database) fails that use, not the process's start.
    """

    def __init__(
        self, node_id: int | Callable[[], int], clock: Callable[[], float] = time.time
    ) -> None:
        self._lease: Callable[[], int] | None = None
        self._node: int | None = None
        if callable(node_id):
            self._lease = node_id
        else:
            self._node = _checked(node_id)
        self._clock = clock
        self._lease_lock = threading.Lock()
        self._lock = threading.Lock()
        self._last_ms = -1
        # The millisecond's slots drawn so far: a sparse Fisher-Yates shuffle of 0..4095,
        # ``_drawn`` slots dealt, ``_moved`` the positions that hold another slot.
        self._drawn = 0
        self._moved: dict[int, int] = {}
        self._random: list[int] = []  # random 32-bit words, taken from the end

    @property
    def node_id(self) -> int:
        """The node part of the ids (leased now if it was given as a lease)."""
        if self._node is None:
            with self._lease_lock:
                if self._node is None:
                    assert self._lease is not None
                    self._node = _checked(self._lease())
        return self._node

    def next_id(self) -> int:
        """Return a new id, in no earlier millisecond than any this generator returned."""
        return self.next_ids(1)[0]

    def next_ids(self, count: int) -> list[int]:
        """Return ``count`` new ids in increasing order."""
        node = self.node_id << SEQUENCE_BITS
        ids: list[int] = []
        with self._lock:
            while len(ids) < count:
                now = max(int(self._clock() * 1000) - EPOCH_MS, self._last_ms)
                if now != self._last_ms:
                    self._last_ms, self._drawn, self._moved = now, 0, {}
                elif self._drawn == SLOTS:  # the millisecond is used up: borrow the next
                    self._last_ms, self._drawn, self._moved = now + 1, 0, {}
                slots = self._deal(min(count - len(ids), SLOTS - self._drawn))
                slots.sort()
                prefix = (self._last_ms << (NODE_BITS + SEQUENCE_BITS)) | node
                ids += [prefix | slot for slot in slots]
        return ids

    def _deal(self, take: int) -> list[int]:
        """``take`` more slots of this millisecond, uniformly among those not dealt yet."""
        moved, random, drawn = self._moved, self._random, self._drawn
        if len(random) < take:  # one system call per 1,024 words or per batch
            random += memoryview(os.urandom(4 * max(take, 1024))).cast("I").tolist()
        slots: list[int] = []
        for here in range(drawn, drawn + take):
            # a uniform position in here..4095 (biased by under 4096 / 2**32)
            there = here + ((random.pop() * (SLOTS - here)) >> 32)
            slots.append(moved.get(there, there))
            moved[there] = moved.get(here, here)
        self._drawn = drawn + take
        return slots


def _checked(node_id: object) -> int:
    if not isinstance(node_id, int) or not 0 <= node_id <= MAX_NODE:
        raise ValueError(f"node id must be 0..{MAX_NODE}, leased from the store")
    return node_id


def id_time_ms(event_id: int) -> int:
    """Unix milliseconds at which an id was generated."""
    return (event_id >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS


def public_id_ms(unix_ms: int) -> int:
    """The millisecond (since ``EPOCH_MS``) whose ids a row created at ``unix_ms`` takes."""
    return max(unix_ms - EPOCH_MS, 0)


def public_id_bounds(ms: int) -> tuple[int, int]:
    """The first and last id of millisecond ``ms`` (``public_id_ms``)."""
    return ms << SEQUENCE_BITS, (ms << SEQUENCE_BITS) | MAX_SEQUENCE


def draw_public_ids(ms: int, taken: Iterable[int], count: int) -> list[int]:
    """Up to ``count`` ids of millisecond ``ms``, none of ``taken``, increasing: their slots
    (the low 12 bits) drawn at random without replacement from the free ones (``os.urandom``).

    Handler and quarantine ids: a counter shared by every organisation (A, B, A got 111, 112,
    113) told each how many rows the others created. These are ordered by the millisecond of
    creation, and within it random, so an id says when its row was made and nothing else; at
    most 2**53 - 1 until 2089, an integer that JavaScript holds exactly. The caller reads
    ``taken`` and inserts under a lock that keeps the millisecond's ids from changing.
    """
    used = {i & MAX_SEQUENCE for i in taken if i >> SEQUENCE_BITS == ms}
    take = min(count, SLOTS - len(used))
    low = ms << SEQUENCE_BITS
    assert low | MAX_SEQUENCE <= MAX_PUBLIC_ID
    if len(used) + take <= SLOTS // 2:  # mostly free: draw slots, again where taken
        chosen: set[int] = set()
        while len(chosen) < take:
            for word in memoryview(os.urandom(2 * (take - len(chosen)))).cast("H"):
                if (slot := word & MAX_SEQUENCE) not in used:
                    chosen.add(slot)
        return sorted(low | slot for slot in chosen)
    free = [slot for slot in range(SLOTS) if slot not in used]
    for here, word in enumerate(memoryview(os.urandom(4 * take)).cast("I")):
        there = here + ((word * (len(free) - here)) >> 32)  # here..end, bias under 1e-6
        free[here], free[there] = free[there], free[here]
    return sorted(low | slot for slot in free[:take])


def next_public_id(ms: int, after: int | None = None) -> int:
    """A new id of millisecond ``ms`` (``public_id_ms``) or later, greater than ``after``:
    its slot drawn at random (``os.urandom``) above ``after``'s if ``after`` is of ``ms`` or
    later (then of ``after``'s millisecond, or of the next when it has no slot left above).

    Attempt-log and replay ids: each follows its handler's last one (``after``), so that a
    handler's rows keep their order with no lock or read of other rows, and tells nothing of
    other organisations' rows. Where another row holds the id, the caller draws again with
    ``after`` that id (each draw is higher: a few draws at most).
    """
    low = 0
    if after is not None and after >> SEQUENCE_BITS >= ms:
        ms, low = after >> SEQUENCE_BITS, (after & MAX_SEQUENCE) + 1
        if low == SLOTS:
            ms, low = ms + 1, 0
    word = int.from_bytes(os.urandom(4), "little")
    new = (ms << SEQUENCE_BITS) | (low + ((word * (SLOTS - low)) >> 32))
    assert new <= MAX_PUBLIC_ID
    return new

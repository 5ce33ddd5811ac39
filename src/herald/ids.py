"""Event ids: 64-bit integers ordered by time (millisecond time, node, sequence)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
NODE_BITS = 10
SEQUENCE_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class IdGenerator:
    """Snowflake-style generator; unique per node, monotonic within a process.

    ``node_id`` comes from the store's lease (``Store.lease_node_id``), so that no two
    processes writing to one store share it; there is no fallback (a process id is not
    unique modulo 1024). Given as the lease itself (a function), it is taken on first use,
    and a failure to lease (a read-only database) fails that use, not the process's start.
    """

    def __init__(self, node_id: int | Callable[[], int]) -> None:
        self._lease: Callable[[], int] | None = None
        self._node: int | None = None
        if callable(node_id):
            self._lease = node_id
        else:
            self._node = _checked(node_id)
        self._lease_lock = threading.Lock()
        self._lock = threading.Lock()
        self._last_ms = 0
        self._sequence = 0

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
        """Return a new id, greater than every id this generator returned before."""
        node_id = self.node_id
        with self._lock:
            now = max(int(time.time() * 1000) - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:  # sequence exhausted: borrow the next millisecond
                    now += 1
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                (now << (NODE_BITS + SEQUENCE_BITS)) | (node_id << SEQUENCE_BITS) | (self._sequence)
            )

    def next_ids(self, count: int) -> list[int]:
        """Return ``count`` new ids in increasing order."""
        return [self.next_id() for _ in range(count)]


def _checked(node_id: object) -> int:
    if not isinstance(node_id, int) or not 0 <= node_id <= MAX_NODE:
        raise ValueError(f"node id must be 0..{MAX_NODE}, leased from the store")
    return node_id


def id_time_ms(event_id: int) -> int:
    """Unix milliseconds at which an id was generated."""
    return (event_id >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS

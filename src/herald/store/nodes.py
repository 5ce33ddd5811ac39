"""Node id leases: the node part of event ids, unique among the processes sharing a store.

A process leases one of the 1024 node ids from the store's ``nodes`` table and renews it
with a heartbeat; a lease not renewed for ``LEASE_SECONDS`` may be taken by another process.
Before that can happen, the holder stops writing: ``refusal`` gives the reason once the
last renewal is older than the lease (less a margin), or the row was taken.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic

from herald.store.dbapi import C
from herald.store.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from herald.store.common import SQLStoreBase

log = logging.getLogger("herald.store")

LEASE_SECONDS = 60.0
HEARTBEAT_SECONDS = 10.0
MARGIN_SECONDS = 5.0  # clocks of two machines run at slightly different rates
MAX_NODE = 1023


def holder_name() -> str:
    """A name no other process uses: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class NodeLease:
    """One leased node id, kept by a heartbeat thread while the process runs."""

    def __init__(
        self,
        node_id: int,
        renew: Callable[[], bool],
        taken_at: float,
        *,
        heartbeat_seconds: float | None = None,
    ) -> None:
        """``renew`` renews (or takes again, if free) the lease, False if another holds it;
        ``taken_at``, the monotonic time just before the lease was taken; a heartbeat every
        ``heartbeat_seconds`` (None: ``HEARTBEAT_SECONDS``)."""
        self.node_id = node_id
        self._renew = renew
        self._valid_until = taken_at + LEASE_SECONDS - MARGIN_SECONDS
        self._taken = False  # another process holds the id now
        self._said: str | None = None  # the refusal last logged
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat,
            args=(heartbeat_seconds or HEARTBEAT_SECONDS,),
            name="herald-node-lease",
            daemon=True,
        )
        self._thread.start()

    def refusal(self) -> str | None:
        """Why this process must not write events now, or None."""
        if self._taken:
            reason = (
                f"node id {self.node_id}: lease lost to another process; this process stops "
                "writing events (restart it to lease a new node id)"
            )
        elif time.monotonic() > self._valid_until:
            reason = (
                f"node id {self.node_id}: lease not renewed for {LEASE_SECONDS - MARGIN_SECONDS:g}"
                " s (database unreachable?); this process stops writing events until it is"
            )
        else:
            return None
        if reason != self._said:
            self._said = reason
            log.error("%s", reason)
        return reason

    def renew(self) -> bool:
        """Renew the lease now (the heartbeat does this every few seconds); True if held."""
        started = time.monotonic()
        if self._renew():
            self._valid_until = started + LEASE_SECONDS - MARGIN_SECONDS
            if self._said is not None:
                log.warning("node id %d: lease renewed; writing events again", self.node_id)
                self._said = None
            self._taken = False
            return True
        self._taken = True
        self.refusal()  # says so, once
        return False

    def _beat(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.renew()
            except Exception as exc:  # the heartbeat must outlive any failure
                log.warning("node id %d: heartbeat failed (%s)", self.node_id, exc)

    def stop(self) -> None:
        """End the heartbeat (before the lease is released)."""
        self._stop.set()
        self._thread.join(5)


class Nodes(Generic[C]):
    """This process's node id, leased from the store's ``nodes`` table: ``store.nodes``."""

    def __init__(self, db: SQLStoreBase[C]) -> None:
        self._db = db
        self._lease: NodeLease | None = None
        self._holder = ""

    def lease(self, preferred: int | None = None) -> int:
        """Lease a node id (0-1023) no other live process sharing the store holds, and keep
        it with a heartbeat; ``preferred`` (HERALD_NODE_ID) or StoreUnavailable if taken.
        Once the lease is lost, appends are refused (``refusal``)."""
        if self._lease is not None:
            return self._lease.node_id
        db = self._db
        holder = holder_name()
        started = time.monotonic()
        with db.transaction() as conn:
            db.lock_nodes(conn)
            db.execute(conn, f"DELETE FROM nodes WHERE {db.NODE_EXPIRED}", (LEASE_SECONDS,))
            rows = db.execute(conn, "SELECT node_id, holder FROM nodes").fetchall()
            taken = {row[0]: row[1] for row in rows}
            if preferred is not None and preferred in taken:
                raise StoreUnavailable(f"node id {preferred} is leased by {taken[preferred]}")
            free = (n for n in range(MAX_NODE + 1) if n not in taken)
            node_id = preferred if preferred is not None else next(free, None)
            if node_id is None:
                raise StoreUnavailable("all 1024 node ids are leased by live processes")
            db.execute(conn, f"INSERT INTO nodes VALUES (?, ?, {db.NODE_NOW})", (node_id, holder))
        self._holder = holder
        self._lease = NodeLease(node_id, lambda: self._hold(node_id, holder), started)
        return node_id

    def _hold(self, node_id: int, holder: str) -> bool:
        """Renew the lease, or take the id again if nobody took it meanwhile."""
        db = self._db
        with db.transaction() as conn:
            renewed = db.execute(
                conn,
                f"UPDATE nodes SET heartbeat = {db.NODE_NOW} WHERE node_id = ? AND holder = ?",
                (node_id, holder),
            ).rowcount
            if renewed:
                return True
            return bool(
                db.execute(
                    conn,
                    f"INSERT INTO nodes VALUES (?, ?, {db.NODE_NOW}) ON CONFLICT DO NOTHING",
                    (node_id, holder),
                ).rowcount
            )

    def renew(self) -> bool:
        """Renew the lease now (a heartbeat thread does so every few seconds), or take the id
        again if nobody holds it; False if another process does (or none is held)."""
        return self._lease.renew() if self._lease is not None else False

    def refusal(self) -> str | None:
        """Why appends are refused now (this process lost its node id lease), or None."""
        return self._lease.refusal() if self._lease is not None else None

    def release(self) -> None:
        """Stop the heartbeat and give the node id back (on close)."""
        if self._lease is None:
            return
        self._lease.stop()
        node_id, self._lease = self._lease.node_id, None
        try:
            self._db.write(
                lambda c: self._db.execute(
                    c, "DELETE FROM nodes WHERE node_id = ? AND holder = ?", (node_id, self._holder)
                )
            )
        except StoreError:
            log.warning("could not release node id %d; it expires on its own", node_id)

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
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        """``renew`` renews (or takes again, if free) the lease, False if another holds it;
        ``taken_at``, the monotonic time just before the lease was taken."""
        self.node_id = node_id
        self._renew = renew
        self._valid_until = taken_at + LEASE_SECONDS - MARGIN_SECONDS
        self._taken = False  # another process holds the id now
        self._said: str | None = None  # the refusal last logged
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_seconds,), name="herald-node-lease", daemon=True
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

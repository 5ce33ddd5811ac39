"""Letting other threads run between the items of a batch's CPU work.

Apart from ``herald.threads`` (which imports asyncio) so the store, and the commands that
only read it, start without asyncio (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import time

GIL_TURN_EVERY = 5  # items of a batch (~0.5 ms of CPU) between two offers of the GIL


def offer_gil(index: int) -> None:
    """Between the items of a batch's CPU work: every GIL_TURN_EVERY items, let a thread
    waiting for the GIL (another request's step) take it now. Left alone, it waits for the
    interpreter's switch interval (5 ms) or, on a busy machine, far longer; a request needs
    the GIL several times (the loop, the store's thread, the loop again), so one tenant's
    batch of 1,000 events multiplied every other request's latency while it ran."""
    if index % GIL_TURN_EVERY == GIL_TURN_EVERY - 1:
        time.sleep(0)  # releases the GIL; a waiting thread wakes and takes it

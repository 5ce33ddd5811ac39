"""Waiting for a condition in tests, instead of sleeping for a guessed time."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from herald.store import Store

SLACK = float(os.environ.get("HERALD_TEST_SLACK", "3"))
"""Every wait's bound is multiplied by this: a machine loaded by other work is slow, and a
longer bound costs time only when the condition never holds (the test fails either way)."""


def wait_until(
    check: Callable[[], bool], timeout: float = 20, state: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``check`` until it holds; AssertionError (with ``state()``) after ``timeout`` s
    (times ``SLACK``)."""
    deadline = time.monotonic() + timeout * SLACK
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; {state()}".rstrip("; "))
        time.sleep(0.02)


def readable(store: Store, event_ids: Iterable[int], after: int = 0) -> None:
    """Wait until ``read_log(after)`` returns ``event_ids``. On PostgreSQL a committed event
    is read only once every older write transaction on the server has ended, in any of its
    databases (the safe watermark): another test session's transaction can hold it back."""
    wanted = set(event_ids)
    wait_until(
        lambda: wanted <= {entry.event_id for entry in store.log.read(after, 10_000)},
        10,
        lambda: f"log read up to seq {store.log.last_seq()}",
    )


def settled(store: Store) -> None:
    """Wait until every write transaction that had begun by now has ended (``store.log``'s
    horizon; at once on SQLite): on PostgreSQL, the moment readers may count on what was
    committed before now, whatever other test sessions on the server are doing."""
    begun = store.log.horizon().begun_below
    wait_until(lambda: store.log.horizon().ended_below >= begun, 10)

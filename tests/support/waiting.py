"""Waiting for a condition in tests, instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    check: Callable[[], bool], timeout: float = 20, state: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``check`` until it holds; AssertionError (with ``state()``) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; {state()}".rstrip("; "))
        time.sleep(0.02)

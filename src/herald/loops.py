"""Background loops that outlive any failure, and their health.

``run_forever`` runs one step of a loop at a time: a step that raises is logged with its
traceback and tried again after a backoff (1 s, doubling up to 5 minutes), so that no
exception ends a loop (the purge that died on one unparseable partition name, issue 17).
Each loop's health is kept in a ``Loops`` registry, which ``/ready`` shows, and in the
gauge ``herald_background_loop_healthy{loop=...}`` of ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from herald.metrics import REGISTRY
from herald.timefmt import format_ms, now_ms

log = logging.getLogger("herald")

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
MAX_ERROR_CHARS = 500

LOOP_HEALTHY = Gauge(
    "herald_background_loop_healthy",
    "1 while a background loop's last step succeeded, 0 while it fails and backs off.",
    ["loop"],
    registry=REGISTRY,
)
LOOP_FAILURES = Counter(
    "herald_background_loop_failures",
    "Steps of a background loop that raised (each logged, then tried again).",
    ["loop"],
    registry=REGISTRY,
)


@dataclass
class LoopState:
    """One loop's health: its consecutive failures and the last error."""

    healthy: bool = True
    failures: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None
    last_success_ms: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "failures": self.failures,
            "last_error": self.last_error,
            "last_error_at": format_ms(self.last_error_ms) if self.last_error_ms else None,
            "last_success_at": format_ms(self.last_success_ms) if self.last_success_ms else None,
        }


class Loops:
    """The health of a process's background loops, by name."""

    def __init__(self) -> None:
        self._states: dict[str, LoopState] = {}

    def register(self, name: str) -> LoopState:
        state = self._states.setdefault(name, LoopState())
        LOOP_HEALTHY.labels(name).set(1 if state.healthy else 0)
        return state

    def succeeded(self, name: str) -> None:
        state = self.register(name)
        if not state.healthy:
            log.info("%s: working again after %d failures", name, state.failures)
        state.healthy, state.failures, state.last_success_ms = True, 0, now_ms()
        LOOP_HEALTHY.labels(name).set(1)

    def failed(self, name: str, error: BaseException) -> LoopState:
        state = self.register(name)
        state.healthy, state.failures = False, state.failures + 1
        state.last_error = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        state.last_error_ms = now_ms()
        LOOP_HEALTHY.labels(name).set(0)
        LOOP_FAILURES.labels(name).inc()
        return state

    def report(self) -> dict[str, dict[str, object]]:
        """Every loop's health, for ``/ready``."""
        return {name: state.as_dict() for name, state in sorted(self._states.items())}

    def failing(self) -> list[str]:
        return sorted(name for name, state in self._states.items() if not state.healthy)


DONE = object()
"""What a step returns to end its loop (a demo with nothing to do, say)."""


def backoff_seconds(failures: int) -> float:
    """The wait after the ``failures``-th failure in a row."""
    delay: float = FIRST_BACKOFF_SECONDS * 2.0 ** min(failures - 1, 30)
    return min(MAX_BACKOFF_SECONDS, delay)


async def run_forever(
    loops: Loops,
    name: str,
    step: Callable[[], Awaitable[object]],
    interval_seconds: float,
    *,
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS,
) -> None:
    """Run ``step`` every ``interval_seconds`` until cancelled (or it returns ``DONE``),
    surviving any exception."""
    loops.register(name)
    while True:
        try:
            if await step() is DONE:
                loops.succeeded(name)
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a loop must outlive any failure
            state = loops.failed(name, exc)
            delay = min(backoff_seconds(state.failures), max_backoff_seconds)
            log.exception(
                "%s: failed (%d in a row); trying again in %g s", name, state.failures, delay
            )
            await asyncio.sleep(delay)
            continue
        loops.succeeded(name)
        await asyncio.sleep(interval_seconds)

"""Background loops outlive any failure, back off, and report their health."""

from __future__ import annotations

import asyncio

import pytest

from herald import loops as loops_module
from herald.loops import DONE, Loops, backoff_seconds, run_forever
from herald.metrics import REGISTRY


def _healthy_gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("herald_background_loop_healthy", {"loop": name})


def test_a_loop_whose_step_raises_keeps_running_and_reports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loops_module, "FIRST_BACKOFF_SECONDS", 0.01)
    registry = Loops()
    steps: list[int] = []
    seen: dict[str, object] = {}

    async def step() -> object:
        steps.append(len(steps))
        if len(steps) <= 3:  # not only store errors: anything
            raise ValueError(f"bad partition name {len(steps)}")
        if len(steps) == 4:
            seen.update(registry.report()["purge"])
            seen["gauge"] = _healthy_gauge("purge")
        return DONE if len(steps) == 5 else None

    asyncio.run(asyncio.wait_for(run_forever(registry, "purge", step, 0.01), 5))
    assert len(steps) == 5  # it went on after each failure
    assert seen["healthy"] is False and seen["failures"] == 3 and seen["gauge"] == 0
    assert seen["last_error"] == "ValueError: bad partition name 3"
    state = registry.report()["purge"]
    assert state["healthy"] is True and state["failures"] == 0 and registry.failing() == []
    assert state["last_error"] == "ValueError: bad partition name 3"  # kept, for the record
    assert _healthy_gauge("purge") == 1


def test_cancelling_a_loop_ends_it() -> None:
    async def idle() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        task = asyncio.create_task(run_forever(Loops(), "idle", idle, 0.01))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_the_backoff_doubles_up_to_a_bound() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_seconds(100) == backoff_seconds(10_000) == 300

"""QuerySlots: each organisation's queries at once are bounded; the next one answers 429."""

from __future__ import annotations

import asyncio

import pytest

from herald.api.problems import problem_for
from herald.errors import DomainError
from herald.events.query_slots import QuerySlots


def test_one_more_query_than_the_slots_is_refused_with_retry_after() -> None:
    slots = QuerySlots(per_organisation=2)
    held = [slots.take(1), slots.take(1)]
    with pytest.raises(DomainError) as refused:
        slots.take(1)
    problem = problem_for(refused.value)
    assert problem.status == 429
    assert problem.headers == {"Retry-After": "1"}
    assert "at most 2 at once" in str(problem.detail)
    slots.take(2)()  # another organisation has slots of its own
    for give_back in held:
        give_back()
    slots.take(1)
    slots.take(1)  # both given back, also the refused one's none


def test_platform_queries_take_no_slot() -> None:
    slots = QuerySlots(per_organisation=1)
    slots.take(None)
    slots.take(None)  # a platform token's queries take none of the one slot
    slots.take(1)


def test_a_slot_stays_taken_until_the_work_ends_though_its_caller_went_away() -> None:
    slots = QuerySlots(per_organisation=1)

    async def scenario() -> None:
        finish = asyncio.Event()

        async def work() -> str:  # a query still running in a store thread
            await finish.wait()
            return "page"

        caller = asyncio.ensure_future(slots.run(1, work))
        await asyncio.sleep(0)
        caller.cancel()  # the client hung up
        with pytest.raises(asyncio.CancelledError):
            await caller
        with pytest.raises(DomainError) as refused:
            await slots.run(1, work)  # the abandoned query still holds the slot
        assert problem_for(refused.value).status == 429
        finish.set()
        for _ in range(10):  # the work ends, and gives the slot back
            await asyncio.sleep(0)
        assert await slots.run(1, work) == "page"

    asyncio.run(scenario())


def test_a_query_that_fails_gives_its_slot_back_and_its_error_to_the_caller() -> None:
    slots = QuerySlots(per_organisation=1)

    async def failing() -> None:
        raise RuntimeError("the store failed")

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="the store failed"):
            await slots.run(1, failing)
        with pytest.raises(RuntimeError):
            await slots.run(1, failing)  # the slot was given back

    asyncio.run(scenario())

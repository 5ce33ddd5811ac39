"""QuerySlots: each organisation's queries at once are bounded; the next one answers 429."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from herald.api.problems import Problem
from herald.api.query_slots import QuerySlots


def test_one_more_query_than_the_slots_is_refused_with_retry_after() -> None:
    slots = QuerySlots(per_organisation=2)
    with ExitStack() as held:
        held.enter_context(slots.hold(1))
        held.enter_context(slots.hold(1))
        with pytest.raises(Problem) as refused, slots.hold(1):
            pass
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "1"}
        assert "at most 2 at once" in str(refused.value.detail)
        with slots.hold(2):  # another organisation has slots of its own
            pass
    with slots.hold(1), slots.hold(1):  # both given back, also the refused one's none
        pass


def test_a_slot_is_given_back_when_the_query_fails() -> None:
    slots = QuerySlots(per_organisation=1)
    with pytest.raises(RuntimeError), slots.hold(7):
        raise RuntimeError("the store failed")
    with slots.hold(7):
        pass


def test_platform_queries_take_no_slot() -> None:
    slots = QuerySlots(per_organisation=1)
    with slots.hold(None), slots.hold(None), slots.hold(1):
        pass

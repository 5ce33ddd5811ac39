"""An alert's lifecycle: once per group until resolved, held down after."""

from __future__ import annotations

from herald.rules import conditions, lifecycle
from herald.rules.lifecycle import Transition
from herald.rules.types import Condition, Group

MIN = 60_000


def test_fires_once_until_resolved_then_holds_down() -> None:
    group = Group(1, "7", 1)
    assert lifecycle.decide(group, True, 0, 10 * MIN) is Transition.FIRED
    assert (group.firing, group.episode, group.fired_ms) == (True, 1, 0)
    assert lifecycle.decide(group, True, MIN, 10 * MIN) is None  # still holding: no repeat
    assert lifecycle.decide(group, False, 2 * MIN, 10 * MIN) is Transition.RESOLVED
    assert group.held_until_ms == 12 * MIN
    assert lifecycle.decide(group, True, 5 * MIN, 10 * MIN) is None  # flapping: held down
    assert lifecycle.decide(group, True, 12 * MIN, 10 * MIN) is Transition.FIRED
    assert group.episode == 2


def test_a_held_group_is_due_when_its_hold_down_ends() -> None:
    absence = Condition("absence", window_ms=MIN)
    group = Group(1, "7", 1, held_until_ms=30 * MIN, state={"last": [0, 1]})
    assert lifecycle.evaluate(absence, group, 5 * MIN, 0) == (None, {})
    assert group.due_ms == 30 * MIN
    assert lifecycle.evaluate(absence, group, 30 * MIN, 0) == (
        Transition.FIRED,
        {"age_seconds": 30 * 60, "last_event_id": 1},
    )
    assert group.due_ms is None  # only a new event resolves an absence


def test_a_count_group_with_nothing_left_may_go() -> None:
    count = Condition("count", window_ms=MIN, count=2)
    group = Group(1, "7", 1, state={"times": [[0, 1]]})
    assert not lifecycle.removable(count, group, 0)
    lifecycle.evaluate(count, group, 2 * MIN, 0)
    assert lifecycle.removable(count, group, 2 * MIN)


def test_a_group_that_fired_is_kept_so_its_next_alert_gets_a_new_id() -> None:
    count = Condition("count", window_ms=MIN, count=1)
    group = Group(1, "7", 1, state={"times": [[0, 1]]})
    assert lifecycle.evaluate(count, group, 0, 0)[0] is Transition.FIRED
    assert lifecycle.evaluate(count, group, 2 * MIN, 0)[0] is Transition.RESOLVED
    assert conditions.idle(count, group.state)  # nothing left to count, and yet
    assert not lifecycle.removable(count, group, 3 * MIN)  # forgotten, it would fire as 1 again
    group.state["times"] = [[4 * MIN, 2]]
    assert lifecycle.evaluate(count, group, 4 * MIN, 0)[0] is Transition.FIRED
    assert group.episode == 2


def test_a_late_event_resolves_a_firing_absence() -> None:
    absence = Condition("absence", window_ms=MIN)
    group = Group(1, "7", 1, state={"last": [0, 1]})
    assert lifecycle.evaluate(absence, group, 2 * MIN, 10 * MIN)[0] is Transition.FIRED
    group.state["last"] = [MIN // 2, 2]  # an event from before the window, arriving now
    resolved, _ = lifecycle.evaluate(absence, group, 3 * MIN, 10 * MIN, seen=True)
    assert resolved is Transition.RESOLVED
    assert group.due_ms == 13 * MIN  # silent still: it fires again once held down no more


def test_a_burst_seen_late_fires_then_resolves() -> None:
    count = Condition("count", window_ms=MIN, count=2)
    group = Group(1, "7", 1)
    for event_id, at in ((1, 0), (2, MIN // 2)):
        group.state.setdefault("times", []).append([at, event_id])
    group.state["hit"] = True  # as conditions.observe marks a burst
    fired, measured = lifecycle.evaluate(count, group, 10 * MIN, 0, seen=True)  # 10 min late
    assert fired is Transition.FIRED
    assert measured == {"count": 2, "first_event_id": 1, "last_event_id": 2}
    assert group.due_ms == 10 * MIN  # no longer holding: resolved at the next pass
    assert lifecycle.evaluate(count, group, 10 * MIN, 0)[0] is Transition.RESOLVED

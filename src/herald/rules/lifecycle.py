"""An alert's lifecycle: fired once per rule and group while the condition holds, resolved
when it stops holding, then held down (no new firing) for the rule's hold-down. Pure: the
caller gives the time."""

from __future__ import annotations

import enum

from herald.rules import conditions
from herald.rules.types import Condition, Group


class Transition(enum.Enum):
    FIRED = "fired"
    RESOLVED = "resolved"


def decide(group: Group, holding: bool, now: int, hold_down_ms: int) -> Transition | None:
    """Move ``group`` (in place) for a condition that is ``holding`` at ``now``; what it did."""
    if group.firing and not holding:
        group.firing = False
        group.held_until_ms = now + hold_down_ms
        return Transition.RESOLVED
    if not group.firing and holding and now >= group.held_until_ms:
        group.firing = True
        group.episode += 1
        group.fired_ms = now
        return Transition.FIRED
    return None


def next_due(condition: Condition, group: Group, now: int) -> int | None:
    """When the timer pass should look at ``group`` again (None: only an event changes it):
    the condition's next change, or the end of a hold-down that keeps it from firing."""
    at = conditions.due(condition, group.state, now)
    if not group.firing and group.held_until_ms > now:
        if conditions.holds(condition, group.state, now):
            return group.held_until_ms
    return at


def evaluate(condition: Condition, group: Group, now: int, hold_down_ms: int) -> Transition | None:
    """Prune the state to ``now``, move the lifecycle and set the group's next due time."""
    conditions.prune(condition, group.state, now)
    transition = decide(group, conditions.holds(condition, group.state, now), now, hold_down_ms)
    group.due_ms = next_due(condition, group, now)
    return transition


def removable(condition: Condition, group: Group, now: int) -> bool:
    """Whether the group may be forgotten: neither firing, held down, nor keeping anything."""
    return (
        not group.firing and group.held_until_ms <= now and conditions.idle(condition, group.state)
    )

"""An alert's lifecycle: fired once per rule and group while the condition holds, resolved
when it stops holding, then held down (no new firing) for the rule's hold-down. Pure: the
caller gives the time."""

from __future__ import annotations

import enum
from typing import Any

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
    when the condition may stop (firing) or start (not firing) holding; a firing group whose
    condition no longer holds, at once; one held down, when its hold-down ends."""
    holding = conditions.holds(condition, group.state, now)
    if group.firing and not holding:
        return now
    if not group.firing and holding:
        return max(group.held_until_ms, now)
    at = conditions.due(condition, group.state, now)
    return at if at is not None and at > now else None


def evaluate(
    condition: Condition, group: Group, now: int, hold_down_ms: int, seen: bool = False
) -> tuple[Transition | None, dict[str, Any]]:
    """Move the group's lifecycle to ``now`` (``seen``: matching events came in this step),
    then forget what can no longer count and set its next due time: the transition, and
    what the condition measured at it. A firing absence resolves when a matching event
    comes in, however late (its silence is broken)."""
    holding = conditions.holds(condition, group.state, now)
    if condition.kind == "absence" and group.firing and seen:
        holding = False
    transition = decide(group, holding, now, hold_down_ms)
    measured = conditions.measure(condition, group.state, now) if transition else {}
    conditions.settle(condition, group.state)
    conditions.prune(condition, group.state, now)
    group.due_ms = next_due(condition, group, now)
    return transition, measured


def removable(condition: Condition, group: Group, now: int) -> bool:
    """Whether the group may be forgotten: it never fired, is not held down and keeps
    nothing. A group that fired is kept for its episode count: its next firing's alert id
    (``…:<episode>:fired``) must differ from every earlier one, or the log, which stores a
    producer id once, would drop it as a repeat."""
    return (
        group.episode == 0
        and group.held_until_ms <= now
        and conditions.idle(condition, group.state)
    )

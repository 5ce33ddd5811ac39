"""A rule, its condition and the state of one of its groups, as stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Kind = Literal["count", "absence", "state", "threshold"]
GroupBy = Literal["endpoint", "sim", "user", "target", "organisation"]
Period = Literal["day", "month"]
FIRED = 2200  # the alert events' types ("Rule fired", "Rule resolved")
RESOLVED = 2201
KINDS: tuple[Kind, ...] = ("count", "absence", "state", "threshold")
GROUPS: tuple[GroupBy, ...] = ("endpoint", "sim", "user", "target", "organisation")


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition; which fields it uses depends on its ``kind``:

    - count: at least ``count`` matching events within ``window_ms``;
    - absence: no matching event for ``window_ms``;
    - state: the endpoint's status is one of ``statuses`` for at least ``window_ms``;
    - threshold: at least ``megabytes`` of data in the current ``period`` (UTC day or month).
    """

    kind: Kind
    window_ms: int = 0
    count: int = 0
    statuses: tuple[str, ...] = ()
    megabytes: float = 0.0
    period: Period = "day"

    def to_json(self) -> dict[str, Any]:
        """The condition as the API shows it (and the store keeps it)."""
        seconds = self.window_ms / 1000
        shown: dict[str, Any] = {"kind": self.kind}
        if self.kind == "count":
            shown |= {"count": self.count, "window_seconds": seconds}
        elif self.kind == "absence":
            shown |= {"window_seconds": seconds}
        elif self.kind == "state":
            shown |= {"statuses": list(self.statuses), "window_seconds": seconds}
        else:
            shown |= {"megabytes": self.megabytes, "period": self.period}
        return shown

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Condition:
        return cls(
            kind=data["kind"],
            window_ms=round(float(data.get("window_seconds", 0)) * 1000),
            count=int(data.get("count", 0)),
            statuses=tuple(data.get("statuses", ())),
            megabytes=float(data.get("megabytes", 0.0)),
            period=data.get("period", "day"),
        )


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule's author sets."""

    name: str
    q: str  # canonical q text (empty: every event)
    group: GroupBy
    condition: Condition
    hold_down_ms: int = 0
    enabled: bool = True

    def restarted_by(self, new: RuleSpec) -> bool:
        """Whether changing to ``new`` changes what the rule decides (its filter, group,
        condition, or whether it runs): then it starts afresh and its open alerts are
        resolved. A new name or hold-down keeps its groups and alerts (the hold-down
        applies from the next resolution)."""
        return (self.q, self.group, self.condition, self.enabled) != (
            new.q,
            new.group,
            new.condition,
            new.enabled,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule."""

    id: int
    organisation_id: int
    spec: RuleSpec
    revision: int  # bumped by every change: the evaluator's state of older ones is dropped
    after_seq: int  # it sees only events after this log position
    created_ms: int
    updated_ms: int


@dataclass(slots=True)
class Group:
    """One group of one rule: the condition's working state and the alert's lifecycle."""

    rule_id: int
    key: str
    organisation_id: int
    firing: bool = False
    episode: int = 0  # how many times it fired (a part of each alert event's id)
    fired_ms: int | None = None
    held_until_ms: int = 0  # it fires again no sooner (the hold-down after resolving)
    due_ms: int | None = None  # when time alone may change it (the timer pass)
    state: dict[str, Any] = field(default_factory=dict)

    def state_text(self) -> str:
        return orjson.dumps(self.state).decode()


@dataclass(frozen=True, slots=True)
class Alert:
    """A group firing now, as ``GET /rule/alert`` lists it."""

    rule_id: int
    rule_name: str
    organisation_id: int
    group_by: str
    key: str
    fired_ms: int
    episode: int
    state: dict[str, Any]

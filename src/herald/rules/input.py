"""What a caller sends to make, change or preview a rule (the API's bodies); a condition's
``checked`` gives it, or raises ``Invalid`` naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from herald.errors import Invalid
from herald.handlers.filters import MAX_FILTER_CHARS
from herald.model import Timestamp
from herald.rules.types import Condition, GroupBy, Kind, Period

INVALID = "Invalid rule"
MAX_WINDOW_SECONDS = 31 * 86_400  # a month: the longest window or hold-down
MAX_COUNT = 10_000
MAX_PREVIEW_DAYS = 31
StatusName = Literal["ATTACHED", "ONLINE", "OFFLINE", "BLOCKED"]
_NEEDS: dict[str, tuple[str, ...]] = {
    "count": ("count", "window_seconds"),
    "absence": ("window_seconds",),
    "state": ("statuses",),
    "threshold": ("megabytes",),
}
_TAKES: dict[str, tuple[str, ...]] = {
    "count": ("count", "window_seconds"),
    "absence": ("window_seconds",),
    "state": ("statuses", "window_seconds"),
    "threshold": ("megabytes", "period"),
}


class ConditionIn(BaseModel):
    """One condition; ``kind`` says which other fields it takes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Kind = Field(
        description="count: at least count matching events within window_seconds; absence: "
        "no matching event for window_seconds; state: the endpoint's status is one of "
        "statuses for at least window_seconds (0: at once); threshold: at least megabytes "
        "of data (its sessions' volume) in the current UTC day or month"
    )
    count: int | None = Field(default=None, ge=1, le=MAX_COUNT, examples=[5])
    window_seconds: float | None = Field(default=None, ge=0, le=MAX_WINDOW_SECONDS, examples=[600])
    statuses: list[StatusName] | None = Field(default=None, min_length=1, max_length=4)
    megabytes: float | None = Field(default=None, gt=0, le=1e12, examples=[500])
    period: Period | None = Field(default=None, description="threshold: day (default) or month")

    def checked(self, where: str = "condition") -> Condition:
        """The condition; 422 naming the field a kind lacks or does not take."""
        given = set(_TAKES["count"] + _TAKES["state"] + _TAKES["threshold"])
        for name in sorted(given):
            if getattr(self, name) is not None and name not in _TAKES[self.kind]:
                raise Invalid.at(
                    f"{where}.{name}", f"not taken by a {self.kind} condition", title=INVALID
                )
        for name in _NEEDS[self.kind]:
            if getattr(self, name) is None:
                raise Invalid.at(
                    f"{where}.{name}", f"required by a {self.kind} condition", title=INVALID
                )
        if self.kind in ("count", "absence") and not self.window_seconds:
            raise Invalid.at(f"{where}.window_seconds", "must be above 0", title=INVALID)
        return Condition(
            kind=self.kind,
            window_ms=round((self.window_seconds or 0) * 1000),
            count=self.count or 0,
            statuses=tuple(dict.fromkeys(self.statuses or ())),
            megabytes=self.megabytes or 0.0,
            period=self.period or "day",
        )


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=256, examples=["attach failures"])
    q: str = Field(
        default="",
        max_length=MAX_FILTER_CHARS,
        description="Which events the rule sees, in the q syntax of GET /event (no "
        "organisation, no time range); empty: all",
        examples=["type:7"],
    )
    group: GroupBy = Field(
        default="endpoint",
        description="One alert per endpoint, sim, user, target or the whole organisation",
    )
    condition: ConditionIn
    hold_down_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_WINDOW_SECONDS,
        description="After a group's alert resolves, it does not fire again for this long",
    )
    enabled: bool = True
    organisation_id: int | None = Field(
        default=None, ge=1, description="Required with an internal token; else the token's own"
    )


class RulePatch(BaseModel):
    """The fields to change; a new q, group, condition or enabled starts the rule afresh
    (its groups forgotten, its open alerts resolved); a new name or hold-down does not."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=256)
    q: str | None = Field(default=None, max_length=MAX_FILTER_CHARS)
    group: GroupBy | None = None
    condition: ConditionIn | None = None
    hold_down_seconds: float | None = Field(default=None, ge=0, le=MAX_WINDOW_SECONDS)
    enabled: bool | None = None


class PreviewIn(BaseModel):
    """A rule (as ``POST /rule`` takes it, without name and enabled) and a past range."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    q: str = Field(default="", max_length=MAX_FILTER_CHARS)
    group: GroupBy = "endpoint"
    condition: ConditionIn
    hold_down_seconds: float = Field(default=0, ge=0, le=MAX_WINDOW_SECONDS)
    from_: Timestamp = Field(alias="from", description=f"At most {MAX_PREVIEW_DAYS} days ago")
    until: Timestamp | None = Field(default=None, description="Absent: now")
    organisation_id: int | None = Field(default=None, ge=1)

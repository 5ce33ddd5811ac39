"""Rules and alerts: a rule watches the organisation's events (``q``) per group and writes
"Rule fired" / "Rule resolved" events; its current alerts, and a preview over the past."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api.deps import ServicesDep, get_principal, require
from herald.api.problems import Problem, field_problem
from herald.auth import Principal
from herald.handlers.filters import MAX_FILTER_CHARS, canonical_filter
from herald.model import Timestamp
from herald.query.syntax import FilterError
from herald.rules.preview import preview
from herald.rules.types import Alert, Condition, GroupBy, Kind, Period, Rule, RuleSpec
from herald.timefmt import format_ms, now_ms, to_ms

router = APIRouter(tags=["rules"])
Manager = Annotated[Principal, Depends(require("rule:manage"))]
RuleId = Annotated[int, Path(ge=0, le=2**63 - 1)]
# {rule_id:int}: digits only, so that PATCH /rule/alert or /rule/preview answers 405 (their
# paths have no PATCH), not 400 from the PATCH of /rule/{rule_id}
MAX_WINDOW_SECONDS = 31 * 86_400  # a month: the longest window or hold-down
MAX_COUNT = 10_000
MAX_PREVIEW_DAYS = 31
PREVIEW_GROUPS = 100  # groups an answer lists, those that fired most first
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


async def _reader(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not (principal.can("rule:read") or principal.can("rule:manage")):
        raise Problem(403, "Forbidden", "this token lacks the permission 'rule:read'")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


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
                raise field_problem(
                    422, f"{where}.{name}", f"not taken by a {self.kind} condition", "Invalid rule"
                )
        for name in _NEEDS[self.kind]:
            if getattr(self, name) is None:
                raise field_problem(
                    422, f"{where}.{name}", f"required by a {self.kind} condition", "Invalid rule"
                )
        if self.kind in ("count", "absence") and not self.window_seconds:
            raise field_problem(422, f"{where}.window_seconds", "must be above 0", "Invalid rule")
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
    """The fields to change; a changed rule starts afresh (its groups are forgotten)."""

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


class PreviewGroupOut(BaseModel):
    key: str
    fired: int


class PreviewOut(BaseModel):
    """What the rule would have done over the range."""

    from_: str = Field(alias="from")
    until: str
    fired: int = Field(description="Firings, all groups together")
    groups: list[PreviewGroupOut] = Field(
        description=f"The groups that fired, most first (at most {PREVIEW_GROUPS})"
    )
    events: int = Field(description="Matching events replayed")
    complete: bool = Field(description="false: stopped after the first 200,000 events")


def _q(services: ServicesDep, value: str) -> str:
    try:
        return canonical_filter(value, services.catalog)
    except FilterError as exc:
        field = "q" + exc.field.removeprefix("filter")
        raise field_problem(422, field, exc.reason, "Invalid rule") from exc


def _spec(services: ServicesDep, body: RuleIn | RulePatch, kept: RuleSpec | None) -> RuleSpec:
    """The spec ``body`` gives (over ``kept``, a patch's rule); 422 naming a bad field."""
    condition = body.condition.checked() if body.condition is not None else None
    group = body.group if body.group is not None else (kept.group if kept else "endpoint")
    chosen = condition or (kept.condition if kept else None)
    assert chosen is not None
    if chosen.kind == "state" and group != "endpoint":
        raise field_problem(422, "group", "a state condition is per endpoint", "Invalid rule")
    hold = body.hold_down_seconds
    return RuleSpec(
        name=body.name if body.name is not None else (kept.name if kept else ""),
        q=_q(services, body.q) if body.q is not None else (kept.q if kept else ""),
        group=group,
        condition=chosen,
        hold_down_ms=round(hold * 1000) if hold is not None else (kept.hold_down_ms if kept else 0),
        enabled=body.enabled if body.enabled is not None else (kept.enabled if kept else True),
    )


class ConditionOut(BaseModel):
    kind: Kind
    count: int | None = None
    window_seconds: float | None = None
    statuses: list[StatusName] | None = None
    megabytes: float | None = None
    period: Period | None = None


class RuleOut(BaseModel):
    """A rule, with how many of its groups fire now."""

    id: int
    organisation_id: int
    name: str
    q: str = Field(description="Which events it sees, in the event list's q syntax")
    group: GroupBy
    condition: ConditionOut
    hold_down_seconds: float
    enabled: bool
    revision: int = Field(description="Counts its changes; alert events name it")
    alerts: int = Field(description="How many of its groups fire now")
    created: str
    updated: str


class AlertGroupOut(BaseModel):
    by: GroupBy
    key: str = Field(description="The endpoint, SIM or user id, the target (type:id) or *")


class AlertRuleOut(BaseModel):
    id: int
    name: str


class AlertOut(BaseModel):
    """A group firing now."""

    rule: AlertRuleOut
    organisation_id: int
    group: AlertGroupOut
    fired: str
    age_seconds: int
    episode: int = Field(description="How many times this group has fired")


def rule_json(rule: Rule, alerts: int = 0) -> dict[str, Any]:
    spec = rule.spec
    return {
        "id": rule.id,
        "organisation_id": rule.organisation_id,
        "name": spec.name,
        "q": spec.q,
        "group": spec.group,
        "condition": spec.condition.to_json(),
        "hold_down_seconds": spec.hold_down_ms / 1000,
        "enabled": spec.enabled,
        "revision": rule.revision,
        "alerts": alerts,
        "created": format_ms(rule.created_ms),
        "updated": format_ms(rule.updated_ms),
    }


def alert_json(alert: Alert, now: int) -> dict[str, Any]:
    return {
        "rule": {"id": alert.rule_id, "name": alert.rule_name},
        "organisation_id": alert.organisation_id,
        "group": {"by": alert.group_by, "key": alert.key},
        "fired": format_ms(alert.fired_ms),
        "age_seconds": max(0, now - alert.fired_ms) // 1000,
        "episode": alert.episode,
    }


def _organisation_for(services: ServicesDep, principal: Principal, named: int | None) -> int:
    if not principal.internal:
        if named is not None and named != principal.organisation_id:
            raise field_problem(
                403, "organisation_id", "this token acts only for its own", "Forbidden"
            )
        assert principal.organisation_id is not None
        return principal.organisation_id
    if named is None:
        raise field_problem(422, "organisation_id", "required with an internal token")
    if services.organisation(named) is None:
        raise field_problem(422, "organisation_id", "unknown organisation")
    return named


async def _get(services: ServicesDep, principal: Principal, rule_id: int) -> Rule:
    rule = await services.run(services.store.rules.get, rule_id, principal.organisation_scope)
    if rule is None:
        raise Problem(404, "Not found", f"no rule {rule_id}")
    return rule


async def _firing(services: ServicesDep, principal: Principal) -> Counter[int]:
    alerts = await services.run(services.store.rules.alerts, principal.organisation_scope)
    return Counter(alert.rule_id for alert in alerts)


@router.post("/rule", status_code=201, responses={201: {"model": RuleOut}})
async def create_rule(body: RuleIn, services: ServicesDep, principal: Manager) -> dict[str, Any]:
    """Make a rule; it sees the events written from now on. 409 beyond
    HERALD_MAX_RULES_PER_ORGANISATION."""
    organisation_id = _organisation_for(services, principal, body.organisation_id)
    spec = _spec(services, body, None)
    rule = await services.run(
        services.store.rules.create,
        organisation_id,
        spec,
        services.settings.max_rules_per_organisation,
    )
    return rule_json(rule)


@router.get("/rule", responses={200: {"model": list[RuleOut]}})
async def list_rules(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The organisation's rules, each with how many of its groups fire now."""
    rules = await services.run(services.store.rules.list_rules, principal.organisation_scope)
    firing = await _firing(services, principal)
    return [rule_json(rule, firing[rule.id]) for rule in rules]


@router.get("/rule/alert", responses={200: {"model": list[AlertOut]}})
async def list_alerts(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The alerts firing now (one per rule and group), oldest first, with their age."""
    alerts = await services.run(services.store.rules.alerts, principal.organisation_scope)
    now = now_ms()
    return [alert_json(alert, now) for alert in alerts]


@router.get("/rule/{rule_id:int}", responses={200: {"model": RuleOut}})
async def get_rule(rule_id: RuleId, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    """One rule, with how many of its groups fire now."""
    rule = await _get(services, principal, rule_id)
    return rule_json(rule, (await _firing(services, principal))[rule.id])


@router.patch("/rule/{rule_id:int}", responses={200: {"model": RuleOut}})
async def update_rule(
    rule_id: RuleId, body: RulePatch, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Change a rule: it starts afresh, seeing the events written from now on (its current
    alerts are dropped without a resolution)."""
    stored = await _get(services, principal, rule_id)
    spec = _spec(services, body, stored.spec)
    rule = await services.run(
        services.store.rules.update, rule_id, principal.organisation_scope, spec
    )
    return rule_json(rule)


@router.delete("/rule/{rule_id:int}", status_code=204)
async def delete_rule(rule_id: RuleId, services: ServicesDep, principal: Manager) -> Response:
    """Delete a rule; it stops firing at once."""
    await services.run(services.store.rules.delete, rule_id, principal.organisation_scope)
    return Response(status_code=204)


@router.post("/rule/preview", responses={200: {"model": PreviewOut}})
async def preview_rule(body: PreviewIn, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    """Run a rule over the organisation's stored events of a past range, nothing written:
    how many times, and for which groups, it would have fired."""
    organisation_id = _organisation_for(services, principal, body.organisation_id)
    condition = body.condition.checked()
    if condition.kind == "state" and body.group != "endpoint":
        raise field_problem(422, "group", "a state condition is per endpoint", "Invalid rule")
    now = now_ms()
    from_ms = to_ms(body.from_)
    until_ms = min(to_ms(body.until), now) if body.until is not None else now
    if until_ms < from_ms:
        raise field_problem(422, "until", "must not be before from", "Invalid rule")
    if until_ms - from_ms > MAX_PREVIEW_DAYS * 86_400_000:
        raise field_problem(422, "from", f"at most {MAX_PREVIEW_DAYS} days before until")
    spec = RuleSpec(
        "preview",
        _q(services, body.q),
        body.group,
        condition,
        round(body.hold_down_seconds * 1000),
    )
    found = await services.query(
        principal,
        lambda: preview(
            services.store,
            organisation_id,
            spec,
            from_ms,
            until_ms,
            max_groups=services.settings.max_groups_per_rule,
            time_limit=services.settings.query_time_limit_seconds,
        ),
    )
    ranked = sorted(found.groups.items(), key=lambda item: (-item[1], item[0]))
    return {
        "from": format_ms(from_ms),
        "until": format_ms(until_ms),
        "fired": found.fired,
        "groups": [{"key": key, "fired": n} for key, n in ranked[:PREVIEW_GROUPS]],
        "events": found.events,
        "complete": found.complete,
    }

"""Rules and alerts: a rule watches the organisation's events (``q``) per group and writes
"Rule fired" / "Rule resolved" events; its current alerts, and a preview over the past; over
``rules/service.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from herald.api.deps import ServicesDep, get_principal, require
from herald.api.problems import Problem
from herald.api.progress import Told, streamed, wants_progress
from herald.api.schemas import answer
from herald.auth import Principal
from herald.rules import service
from herald.rules.input import PreviewIn, RuleIn, RulePatch, StatusName
from herald.rules.preview import Preview
from herald.rules.types import Alert, GroupBy, Kind, Period, Rule
from herald.services import Services
from herald.store.rules import Refused
from herald.timefmt import format_ms, now_ms

router = APIRouter(tags=["rules"])
Manager = Annotated[Principal, Depends(require("rule:manage"))]
RuleId = Annotated[int, Path(ge=0, le=2**63 - 1)]
# {rule_id:int}: digits only, so that PATCH /rule/alert or /rule/preview answers 405 (their
# paths have no PATCH), not 400 from the PATCH of /rule/{rule_id}
PREVIEW_GROUPS = 100  # groups a preview's answer lists, those that fired most first


async def _reader(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not (principal.can("rule:read") or principal.can("rule:manage")):
        raise Problem(403, "Forbidden", "this token lacks the permission 'rule:read'")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


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
    revision: int = Field(
        description="Counts the changes that started it afresh; alert events name it"
    )
    alerts: int = Field(description="How many of its groups fire now")
    groups: int = Field(description="How many groups it tracks")
    group_limit_reached: bool = Field(
        description="true: it tracks HERALD_MAX_GROUPS_PER_RULE groups, the most; the events "
        "of any other group are not evaluated (a change of the rule starts it afresh)"
    )
    groups_refused: int = Field(
        description="How many other groups it refused at the limit since it last started "
        "(each once; counted up to HERALD_MAX_GROUPS_PER_RULE)"
    )
    refused_since: str | None = Field(
        description="When it first refused one since it last started (null: none)"
    )
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


def rule_json(
    rule: Rule,
    max_groups: int,
    alerts: int = 0,
    groups: int = 0,
    refused: Refused | None = None,
) -> dict[str, Any]:
    spec = rule.spec
    return answer(
        RuleOut(
            id=rule.id,
            organisation_id=rule.organisation_id,
            name=spec.name,
            q=spec.q,
            group=spec.group,
            condition=ConditionOut.model_validate(spec.condition.to_json()),
            hold_down_seconds=spec.hold_down_ms / 1000,
            enabled=spec.enabled,
            revision=rule.revision,
            alerts=alerts,
            groups=groups,
            group_limit_reached=groups >= max_groups,
            groups_refused=refused.groups if refused else 0,
            refused_since=format_ms(refused.since_ms) if refused else None,
            created=format_ms(rule.created_ms),
            updated=format_ms(rule.updated_ms),
        )
    )


def alert_json(alert: Alert, now: int) -> dict[str, Any]:
    return answer(
        AlertOut(
            rule=AlertRuleOut(id=alert.rule_id, name=alert.rule_name),
            organisation_id=alert.organisation_id,
            group=AlertGroupOut(by=alert.group_by, key=alert.key),
            fired=format_ms(alert.fired_ms),
            age_seconds=max(0, now - alert.fired_ms) // 1000,
            episode=alert.episode,
        )
    )


async def _with_groups(
    services: Services, principal: Principal, rules: list[Rule]
) -> list[dict[str, Any]]:
    firing = await service.firing(services, principal)
    tracked = await service.tracked(services, principal)
    refused = await service.refused(services, principal)
    most = services.settings.max_groups_per_rule
    return [
        rule_json(rule, most, firing[rule.id], tracked.get(rule.id, 0), refused.get(rule.id))
        for rule in rules
    ]


@router.post("/rule", status_code=201, responses={201: {"model": RuleOut}})
async def create_rule(body: RuleIn, services: ServicesDep, principal: Manager) -> dict[str, Any]:
    """Make a rule; it sees the events written from now on. 409 beyond
    HERALD_MAX_RULES_PER_ORGANISATION."""
    rule = await service.create_rule(services, principal, body)
    return rule_json(rule, services.settings.max_groups_per_rule)


@router.get("/rule", responses={200: {"model": list[RuleOut]}})
async def list_rules(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The organisation's rules, each with how many of its groups fire now and how many it
    tracks."""
    rules = await service.list_rules(services, principal)
    return await _with_groups(services, principal, rules)


@router.get("/rule/alert", responses={200: {"model": list[AlertOut]}})
async def list_alerts(services: ServicesDep, principal: Reader) -> list[dict[str, Any]]:
    """The alerts firing now (one per rule and group), oldest first, with their age."""
    now = now_ms()
    return [alert_json(alert, now) for alert in await service.alerts(services, principal)]


@router.get("/rule/{rule_id:int}", responses={200: {"model": RuleOut}})
async def get_rule(rule_id: RuleId, services: ServicesDep, principal: Reader) -> dict[str, Any]:
    """One rule, with how many of its groups fire now and how many it tracks."""
    rule = await service.get_rule(services, principal, rule_id)
    (found,) = await _with_groups(services, principal, [rule])
    return found


@router.patch("/rule/{rule_id:int}", responses={200: {"model": RuleOut}})
async def update_rule(
    rule_id: RuleId, body: RulePatch, services: ServicesDep, principal: Manager
) -> dict[str, Any]:
    """Change a rule. A new q, group, condition or enabled starts it afresh, seeing the
    events written from now on, and resolves its current alerts ("Rule resolved",
    ``detail.reason`` "the rule was changed", or "the rule was disabled"); a new name or
    hold-down keeps its groups, alerts and revision."""
    rule = await service.update_rule(services, principal, rule_id, body)
    (found,) = await _with_groups(services, principal, [rule])
    return found


@router.delete("/rule/{rule_id:int}", status_code=204)
async def delete_rule(rule_id: RuleId, services: ServicesDep, principal: Manager) -> Response:
    """Delete a rule; it stops firing at once, its current alerts resolved ("Rule
    resolved", ``detail.reason`` "the rule was deleted")."""
    await service.delete_rule(services, principal, rule_id)
    return Response(status_code=204)


def preview_json(from_ms: int, until_ms: int, found: Preview) -> dict[str, Any]:
    ranked = sorted(found.groups.items(), key=lambda item: (-item[1], item[0]))
    preview = PreviewOut.model_validate(
        {
            "from": format_ms(from_ms),
            "until": format_ms(until_ms),
            "fired": found.fired,
            "groups": [PreviewGroupOut(key=key, fired=n) for key, n in ranked[:PREVIEW_GROUPS]],
            "events": found.events,
            "complete": found.complete,
        }
    )
    return answer(preview)


def progress_json(from_ms: int, until_ms: int, read: int, through: int) -> dict[str, Any]:
    span = max(1, until_ms - from_ms)
    return {
        "read": read,
        "through": format_ms(through),
        "fraction": round(min(1.0, max(0.0, (through - from_ms) / span)), 4),
    }


_PREVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": PreviewOut,
        "description": "The preview. Asked with Accept: application/x-ndjson, NDJSON lines "
        'instead: {"progress": {"read", "through", "fraction"}} as the read goes on, then '
        '{"result": this document} (or {"error": a problem document})',
    }
}


@router.post("/rule/preview", response_model=None, responses=_PREVIEW_RESPONSES)
async def preview_rule(
    body: PreviewIn, request: Request, services: ServicesDep, principal: Reader
) -> dict[str, Any] | StreamingResponse:
    """Run a rule over the organisation's stored events of a past range, nothing written:
    how many times, and for which groups, it would have fired. Asked with ``Accept:
    application/x-ndjson``, the answer tells its progress: NDJSON lines ``{"progress":
    {"read", "through", "fraction"}}`` as the read goes on, then ``{"result": ...}``, the
    same document as the JSON answer."""
    plan = service.plan_preview(services, principal, body)
    if not wants_progress(request):
        found = await service.run_preview(services, principal, plan)
        return preview_json(plan.from_ms, plan.until_ms, found)

    async def start(told: Told) -> Preview:
        told(0, plan.from_ms)
        return await service.run_preview(services, principal, plan, told)

    return await streamed(
        start,
        lambda read, through: progress_json(plan.from_ms, plan.until_ms, read, through),
        lambda found: preview_json(plan.from_ms, plan.until_ms, found),
    )

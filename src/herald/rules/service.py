"""Rules for a caller: make, read, change, delete, the alerts firing now and a preview.
Refusals are ``herald.errors``: a rule not among the caller's is ``NotFound``, a bad field
``Invalid`` naming it, one rule too many the store's ``LimitReached``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from herald.auth import Principal
from herald.errors import Invalid, NotFound
from herald.handlers.filters import canonical_filter
from herald.organisations.service import acting_for
from herald.query.syntax import FilterError
from herald.rules import changing
from herald.rules.input import INVALID, MAX_PREVIEW_DAYS, PreviewIn, RuleIn, RulePatch
from herald.rules.preview import Preview, Progress, preview
from herald.rules.types import Alert, Rule, RuleSpec
from herald.services import Services
from herald.store.rules import Refused
from herald.timefmt import now_ms, to_ms

DAY_MS = 86_400_000


def _q(services: Services, value: str) -> str:
    try:
        return canonical_filter(value, services.catalog)
    except FilterError as exc:
        raise Invalid.at("q" + exc.field.removeprefix("filter"), exc.reason, title=INVALID) from exc


def _spec(services: Services, body: RuleIn | RulePatch, kept: RuleSpec | None) -> RuleSpec:
    """The spec ``body`` gives (over ``kept``, a patch's rule)."""
    condition = body.condition.checked() if body.condition is not None else None
    group = body.group if body.group is not None else (kept.group if kept else "endpoint")
    chosen = condition or (kept.condition if kept else None)
    assert chosen is not None
    if chosen.kind == "state" and group != "endpoint":
        raise Invalid.at("group", "a state condition is per endpoint", title=INVALID)
    hold = body.hold_down_seconds
    return RuleSpec(
        name=body.name if body.name is not None else (kept.name if kept else ""),
        q=_q(services, body.q) if body.q is not None else (kept.q if kept else ""),
        group=group,
        condition=chosen,
        hold_down_ms=round(hold * 1000) if hold is not None else (kept.hold_down_ms if kept else 0),
        enabled=body.enabled if body.enabled is not None else (kept.enabled if kept else True),
    )


async def create_rule(services: Services, principal: Principal, body: RuleIn) -> Rule:
    """A new rule, seeing the events written from now on."""
    organisation_id = acting_for(services, principal, body.organisation_id)
    spec = _spec(services, body, None)
    # an absence per endpoint reads the log to seed its groups: a tenant's query, in one of
    # its organisation's query slots and within the query time limit
    return await services.query(
        principal,
        services.store.rules.create,
        organisation_id,
        spec,
        services.settings.max_rules_per_organisation,
        services.settings.max_groups_per_rule,
        services.settings.query_time_limit_seconds,
    )


async def get_rule(services: Services, principal: Principal, rule_id: int) -> Rule:
    rule = await services.run(services.store.rules.get, rule_id, principal.organisation_scope)
    if rule is None:
        raise NotFound(f"no rule {rule_id}")
    return rule


async def list_rules(services: Services, principal: Principal) -> list[Rule]:
    return await services.run(services.store.rules.list_rules, principal.organisation_scope)


async def alerts(services: Services, principal: Principal) -> list[Alert]:
    """The alerts firing now, oldest first."""
    return await services.run(services.store.rules.alerts, principal.organisation_scope)


async def firing(services: Services, principal: Principal) -> Counter[int]:
    """How many groups of each rule fire now."""
    return Counter(alert.rule_id for alert in await alerts(services, principal))


async def tracked(services: Services, principal: Principal) -> dict[int, int]:
    """How many groups each rule tracks (at most ``HERALD_MAX_GROUPS_PER_RULE``)."""
    return await services.run(services.store.rules.group_counts, principal.organisation_scope)


async def refused(services: Services, principal: Principal) -> dict[int, Refused]:
    """How many groups each rule refused at its limit, and since when (rules that refused
    none are left out)."""
    return await services.run(services.store.rules.refused, principal.organisation_scope)


async def update_rule(
    services: Services, principal: Principal, rule_id: int, body: RulePatch
) -> Rule:
    """Change a rule: a new filter, group, condition or enabled starts it afresh, its open
    alerts resolved; a new name or hold-down keeps its groups and alerts."""
    stored = await get_rule(services, principal, rule_id)
    spec = _spec(services, body, stored.spec)
    await _change(services, principal, stored, spec)
    return await get_rule(services, principal, rule_id)


async def delete_rule(services: Services, principal: Principal, rule_id: int) -> None:
    """Delete a rule, its open alerts resolved."""
    await _change(services, principal, await get_rule(services, principal, rule_id), None)


async def _change(
    services: Services, principal: Principal, rule: Rule, spec: RuleSpec | None
) -> None:
    await services.query(  # a change may seed its groups from the log, as a creation does
        principal,
        changing.change,
        services.store,
        services.writer,
        rule,
        principal.organisation_scope,
        spec,
        services.settings.max_groups_per_rule,
        services.settings.query_time_limit_seconds,
    )


@dataclass(frozen=True, slots=True)
class PreviewPlan:
    """A checked preview: the rule and the range, for the caller's organisation."""

    organisation_id: int
    spec: RuleSpec
    from_ms: int
    until_ms: int


def plan_preview(services: Services, principal: Principal, body: PreviewIn) -> PreviewPlan:
    """The preview ``body`` asks for, checked (``Invalid`` naming the field)."""
    organisation_id = acting_for(services, principal, body.organisation_id)
    condition = body.condition.checked()
    if condition.kind == "state" and body.group != "endpoint":
        raise Invalid.at("group", "a state condition is per endpoint", title=INVALID)
    now = now_ms()
    from_ms = to_ms(body.from_)
    until_ms = min(to_ms(body.until), now) if body.until is not None else now
    if until_ms < from_ms:
        raise Invalid.at("until", "must not be before from", title=INVALID)
    if until_ms - from_ms > MAX_PREVIEW_DAYS * DAY_MS:
        raise Invalid.at("from", f"at most {MAX_PREVIEW_DAYS} days before until", title=INVALID)
    spec = RuleSpec(
        "preview", _q(services, body.q), body.group, condition, round(body.hold_down_seconds * 1000)
    )
    return PreviewPlan(organisation_id, spec, from_ms, until_ms)


async def run_preview(
    services: Services, principal: Principal, plan: PreviewPlan, progress: Progress | None = None
) -> Preview:
    """Run a checked preview over the caller's stored events, nothing written, in one of
    its organisation's query slots; ``progress`` is told how far it has read (from the
    store's thread)."""
    return await services.query(
        principal,
        lambda: preview(
            services.store,
            plan.organisation_id,
            plan.spec,
            plan.from_ms,
            plan.until_ms,
            max_groups=services.settings.max_groups_per_rule,
            time_limit=services.settings.query_time_limit_seconds,
            progress=progress,
        ),
    )


async def preview_rule(
    services: Services, principal: Principal, body: PreviewIn
) -> tuple[int, int, Preview]:
    """Run a rule over the caller's stored events of a past range, nothing written: the
    range (from, until) and what it would have done."""
    plan = plan_preview(services, principal, body)
    return plan.from_ms, plan.until_ms, await run_preview(services, principal, plan)

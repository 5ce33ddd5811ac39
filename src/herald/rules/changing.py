"""A rule changed or deleted resolves the alerts it has open: a "Rule resolved" event per
firing group (``detail.reason``: the rule was changed, disabled or deleted), appended in the
transaction that changes the rule (``store.rules.changing``), with the id the evaluator
would have given it, so an alert is never left open nor resolved twice. A change of its
name or hold-down only (``RuleSpec.restarted_by``) keeps its groups and alerts."""

from __future__ import annotations

from functools import partial

from herald.events.writer import EventWriter
from herald.rules import alerts, conditions
from herald.rules.lifecycle import Transition
from herald.rules.types import Rule, RuleSpec
from herald.store import Store
from herald.store.errors import NotFound, TryAgain
from herald.timefmt import now_ms

ATTEMPTS = 5  # the evaluator fired or resolved a group between the read and the change


def _resolved(keys: list[tuple[str, int]], resolved: set[tuple[str, int]]) -> list[bool]:
    """Which prepared resolutions stand: those of the groups that fired until the change."""
    return [key in resolved for key in keys]


def _reason(old: RuleSpec, new: RuleSpec | None) -> str:
    """Why a change resolves the rule's open alerts."""
    if new is None:
        return alerts.DELETED
    return alerts.DISABLED if old.enabled and not new.enabled else alerts.CHANGED


def _again(store: Store, rule: Rule, organisation_ids: tuple[int, ...] | None) -> Rule:
    """The rule as stored now (it changed under the change); NotFound if it is gone."""
    found = store.rules.get(rule.id, organisation_ids)
    if found is None:
        raise NotFound(f"no rule {rule.id}")
    return found


def change(
    store: Store,
    writer: EventWriter,
    rule: Rule,
    organisation_ids: tuple[int, ...] | None,
    spec: RuleSpec | None,
    max_groups: int = 10_000,
    time_limit: float | None = None,
) -> None:
    """Blocking: change ``rule`` to ``spec`` (None: delete it); unless only its name or
    hold-down change, its open alerts are resolved in the same transaction (``max_groups``:
    the groups a changed rule may know at once; ``time_limit``: of its seeding's read of the
    log, QueryTimeout past it). NotFound if it is not in scope; TryAgain if its alerts kept
    changing under the change."""
    organisation = store.organisations.get(rule.organisation_id)
    name = organisation.name if organisation is not None else ""
    for _ in range(ATTEMPTS):
        if spec is not None and not rule.spec.restarted_by(spec):
            if store.rules.amend(rule, organisation_ids, spec):
                return
            rule = _again(store, rule, organisation_ids)
            continue
        reason = _reason(rule.spec, spec)
        now = now_ms()
        prepared = [
            ((group.key, group.episode), event)
            for group in store.rules.firing(rule.id)
            if (
                event := alerts.to_event(
                    writer,
                    rule,
                    group,
                    Transition.RESOLVED,
                    conditions.measure(rule.spec.condition, group.state, now),
                    name,
                    now,
                    reason,
                )
            )
            is not None
        ]
        keys = [key for key, _ in prepared]
        changed = writer.append_with(
            [event for _, event in prepared],
            store.rules.changing(rule, organisation_ids, spec, keys, max_groups, time_limit),
            standing=partial(_resolved, keys),
        )
        if changed is not None:
            return
        rule = _again(store, rule, organisation_ids)
    raise TryAgain(f"rule {rule.id}'s alerts changed while it was being changed; try again")

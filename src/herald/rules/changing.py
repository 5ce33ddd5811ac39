"""A rule changed or deleted resolves the alerts it has open: a "Rule resolved" event per
firing group (``detail.reason``: the rule was changed, or deleted), appended in the
transaction that changes the rule (``store.rules.changing``), with the id the evaluator
would have given it, so an alert is never left open nor resolved twice."""

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


def change(
    store: Store,
    writer: EventWriter,
    rule: Rule,
    organisation_ids: tuple[int, ...] | None,
    spec: RuleSpec | None,
    max_groups: int = 10_000,
) -> None:
    """Blocking: change ``rule`` to ``spec`` (None: delete it), its open alerts resolved in
    the same transaction (``max_groups``: the groups a changed rule may know at once).
    NotFound if it is not in scope; TryAgain if its alerts kept changing under the
    change."""
    organisation = store.organisations.get(rule.organisation_id)
    name = organisation.name if organisation is not None else ""
    reason = alerts.DELETED if spec is None else alerts.CHANGED
    for _ in range(ATTEMPTS):
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
            store.rules.changing(rule, organisation_ids, spec, keys, max_groups),
            standing=partial(_resolved, keys),
        )
        if changed is not None:
            return
        found = store.rules.get(rule.id, organisation_ids)
        if found is None:
            raise NotFound(f"no rule {rule.id}")
        rule = found
    raise TryAgain(f"rule {rule.id}'s alerts changed while it was being changed; try again")

"""Where a threshold rule's data usage comes from besides the log: the providers' data usage
records (``store.usage``), which the usage routes count for a day that has any. They are not
events, so the evaluator reads them for the threshold groups it moves (their endpoint's,
of the current period), and moves a group below its threshold again every
``RECHECK_MS``: records that come in without a session closing are counted within it."""

from __future__ import annotations

from herald.ingest.usage import MAX_ENDPOINT_ID
from herald.rules import conditions
from herald.rules.types import Group, Rule

RECHECK_MS = 300_000  # a threshold group below its threshold reads its records this often


def reads_records(rule: Rule, group: Group) -> bool:
    """Whether the group's usage includes its endpoint's records: a threshold per endpoint
    whose key is an endpoint id (records name endpoints by id)."""
    return (
        rule.spec.condition.kind == "threshold"
        and rule.spec.group == "endpoint"
        and group.key.isdigit()
        and int(group.key) <= MAX_ENDPOINT_ID
    )


def rechecked(rule: Rule, group: Group, now: int) -> bool:
    """Whether the group, below its threshold in the current period, should read its
    records again within ``RECHECK_MS``."""
    condition = rule.spec.condition
    return (
        reads_records(rule, group)
        and not group.firing
        and group.state.get("period") == conditions.period_start(condition.period, now)
    )

"""Alerts as events: "Rule fired" (2200) and "Rule resolved" (2201) in the organisation's own
log, the target the group's device (endpoint, SIM, user, the event's target, or the
organisation). Each has a deterministic producer id (``rule:<rule>:<revision>:<group>:
<episode>:fired|resolved``), which the log stores once; a resolution says why
(``detail.reason``: the condition no longer holds, or the rule was changed, disabled or
deleted).
They are built by the writer (``EventWriter.build``) and appended with what their step
writes (``EventWriter.append_with``)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from herald.devices import state as device_state
from herald.events.writer import EventWriter
from herald.model import (
    EndpointRef,
    EventIn,
    NewEvent,
    OrganisationRef,
    SimRef,
    TargetRef,
    TypeRef,
    UserRef,
)
from herald.rules.lifecycle import Transition
from herald.rules.types import FIRED as FIRED
from herald.rules.types import RESOLVED as RESOLVED
from herald.rules.types import Group, Rule
from herald.timefmt import format_ms

log = logging.getLogger(__name__)

TYPES = frozenset({FIRED, RESOLVED})
ORGANISATION_KEY = "*"  # the one group of a rule grouped by organisation
CLEARED = "the condition no longer holds"
CHANGED = "the rule was changed"
DELETED = "the rule was deleted"
DISABLED = "the rule was disabled"
_REFS: dict[str, type[EndpointRef | SimRef | UserRef]] = {
    "endpoint": EndpointRef,
    "sim": SimRef,
    "user": UserRef,
}


def group_key(group_by: str, record: dict[str, Any]) -> str | None:
    """The key of the group an event falls in (None: the event names no such group)."""
    if group_by == "endpoint":
        return device_state.endpoint_key(record)
    if group_by == "organisation":
        return ORGANISATION_KEY
    if group_by == "target":
        target = record.get("target")
        if isinstance(target, dict) and target.get("type") and target.get("id") is not None:
            return f"{target['type']}:{target['id']}"[:256]
        return None
    nested = record.get(group_by)
    if not isinstance(nested, dict):
        return None
    value = nested.get("id")
    if value is None and group_by == "sim":
        value = nested.get("iccid")
    return None if value is None else str(value)[:256]


def _subject(rule: Rule, key: str) -> tuple[TargetRef, dict[str, Any]]:
    """The event's target and the references (endpoint, sim, user) that name the group."""
    group_by = rule.spec.group
    if group_by == "organisation":
        return TargetRef(type="organisation", id=str(rule.organisation_id)), {}
    if group_by == "target":
        kind, _, ident = key.partition(":")
        return TargetRef(type=kind, id=ident or key), {}
    ref: dict[str, Any] = {"id": int(key)} if key.isdigit() else {}
    if not ref:
        ref = {"name": key} if group_by in ("endpoint", "user") else {"iccid": key}
    return TargetRef(type=group_by, id=key), {group_by: _REFS[group_by](**ref)}


def to_event(
    writer: EventWriter,
    rule: Rule,
    group: Group,
    transition: Transition,
    measured: dict[str, Any],
    organisation_name: str,
    now: int,
    reason: str = CLEARED,
) -> NewEvent | None:
    """The event telling of ``transition`` (a resolution's ``reason``); None, logged, if
    the catalogue refuses it."""
    fired = transition is Transition.FIRED
    target, refs = _subject(rule, group.key)
    label = (
        f"{rule.spec.group} {group.key}" if rule.spec.group != "organisation" else "organisation"
    )
    detail: dict[str, Any] = {
        "rule": {"id": rule.id, "name": rule.spec.name, "revision": rule.revision},
        "group": {"by": rule.spec.group, "key": group.key},
        "condition": rule.spec.condition.to_json(),
        "fired": format_ms(group.fired_ms or now),
        **measured,
    }
    if not fired:
        detail["resolved"] = format_ms(now)
        detail["fired_seconds"] = (now - (group.fired_ms or now)) // 1000
        detail["reason"] = reason
    key = group.key if len(group.key) <= 64 else hashlib.sha256(group.key.encode()).hexdigest()
    producer_id = f"rule:{rule.id}:{rule.revision}:{key}:{group.episode}:{transition.value}"
    built = writer.build(
        EventIn(
            id=producer_id,
            event_type=TypeRef(id=FIRED if fired else RESOLVED),
            description=f"Rule {rule.spec.name!r} {transition.value} for {label}"[:4096],
            target=target,
            detail=detail,
            **refs,
        ),
        organisation=OrganisationRef(id=rule.organisation_id, name=organisation_name),
        received_ms=now,
        internal=True,
        provider="herald",
    )
    if isinstance(built, list):
        log.error("rules: cannot write the alert of rule %d: %s", rule.id, built)
        return None
    return built

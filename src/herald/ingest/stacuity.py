"""Stacuity event-handler envelopes, normalised to ``EventIn``.

An envelope names its type by moniker and its scope by id: ``{"eventId", "eventTime",
"eventType": "<moniker>", "endpointId" | "routingTargetId" | "accountId", "detail"}``.
The moniker maps to a Herald type through the catalogue; the scope becomes the event's
``target`` (and its ``endpoint`` when the id is numeric); the envelope is kept as payload.
"""

from __future__ import annotations

from typing import Any

from herald.ingest.errors import RecordError
from herald.ingest.records import ORIGINAL_CONTENT_TYPE, parse_detail

SCOPES = (("endpointId", "endpoint"), ("routingTargetId", "routing_target"), ("accountId", None))
"""Envelope scope field -> Herald target type (None: the account, i.e. the organisation)."""

# Stacuity sends no severity or source: derive them from what the moniker says happened.
_WARNING_WORDS = ("failed", "undelivered", "unavailable", "down", "forcibly", "unreachable")
_ACCOUNT_WARNINGS = ("warning", "depleted")
_API_PREFIXES = ("endpointprovisioningstatus", "endpointkeyvalue", "bundleactivated")
_POLICY_PREFIXES = ("account", "bundle")

TEST_MESSAGE = {"message": "webhook test"}
"""What Stacuity's "Test webhook" button sends: acknowledged, never stored."""


def normalise_envelope(envelope: object) -> dict[str, Any]:
    """One Stacuity envelope as an ``EventIn`` document; ``RecordError`` naming the field if not."""
    if not isinstance(envelope, dict):
        raise RecordError("body", "each event must be a JSON object")
    event_id = envelope.get("eventId")
    if isinstance(event_id, bool) or not isinstance(event_id, int | str) or not str(event_id):
        raise RecordError("eventId", "required: the event's id")
    moniker = envelope.get("eventType")
    if not isinstance(moniker, str) or not moniker:
        raise RecordError("eventType", "required: the event's moniker")
    event: dict[str, Any] = {
        "id": str(event_id),
        "timestamp": envelope.get("eventTime"),
        "moniker": moniker,
        "event_severity": {"id": severity_for(moniker)},
        "event_source": {"id": source_for(moniker)},
        "detail": parse_detail(envelope.get("detail")),
        "payload": {"content_type": ORIGINAL_CONTENT_TYPE, "data": envelope},
    }
    event.update(_scope(envelope))
    return event


def severity_for(moniker: str) -> int:
    """Warn (1) for what went wrong, Info (0) otherwise."""
    if any(word in moniker for word in _WARNING_WORDS):
        return 1
    if moniker.startswith("account") or "usagewarning" in moniker:
        return 1 if any(word in moniker for word in _ACCOUNT_WARNINGS) else 0
    return 0


def source_for(moniker: str) -> int:
    """API (2) for provisioning changes, Policy Control (1) for the account, else Network (0)."""
    if moniker.startswith(_API_PREFIXES):
        return 2
    if moniker.startswith(_POLICY_PREFIXES):
        return 1
    return 0


def _scope(envelope: dict[str, Any]) -> dict[str, Any]:
    for field, target_type in SCOPES:
        value = envelope.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value):
            raise RecordError(field, "must be a number or a non-empty string")
        if target_type is None:
            return {}  # the account: the organisation the ingest token writes for
        scoped: dict[str, Any] = {"target": {"type": target_type, "id": str(value)}}
        if target_type == "endpoint":
            # A numeric id is the endpoint's id; another is how Stacuity names the endpoint,
            # so that endpoint= and /endpoint/{id}/event find it as they find a name.
            # ASCII digits only: "²".isdigit() is true and int("²") fails (was a 500).
            text = str(value)
            numeric = text.isascii() and text.isdigit() and int(text) < 2**63
            scoped["endpoint"] = {"id": int(text)} if numeric else {"name": text}
        return scoped
    return {}

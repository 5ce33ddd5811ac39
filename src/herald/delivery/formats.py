"""What a request carries: ``native`` records, CloudEvents 1.0 (structured mode), NDJSON
or Stacuity's event envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

FORMATS = ("native", "cloudevents", "ndjson", "stacuity")
STACUITY_SCOPES = {"endpoint": "endpointId", "routing_target": "routingTargetId"}
CLOUDEVENTS_TYPE_PREFIX = "io.herald.event."
MAX_BATCH_BODY_BYTES = 64 * 1024 * 1024
"""The most record bytes one batch carries, whatever its max_events (up to 10,000) and
max_bytes: a batch's memory and send time stay bounded. A single bigger record still goes."""


class Item:
    """One event on its way out: its log position, its id and the stored bytes, parsed into
    ``record`` only if something asks (a filter, CloudEvents): a native batch never does."""

    __slots__ = ("_record", "body", "event_id", "seq")

    def __init__(self, seq: int, event_id: int, body: bytes) -> None:
        self.seq = seq
        self.event_id = event_id
        self.body = body
        self._record: dict[str, Any] | None = None

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = orjson.loads(self.body)
        return self._record


def cloudevent(item: Item) -> bytes:
    """The event as a CloudEvents 1.0 JSON document, the record as ``data``."""
    record = item.record
    organisation = (record.get("organisation") or {}).get("id")
    kind = record.get("moniker") or (record.get("event_type") or {}).get("id")
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(item.event_id),
        "source": f"/herald/organisations/{organisation}",
        "type": f"{CLOUDEVENTS_TYPE_PREFIX}{kind}",
        "time": record.get("timestamp"),
        "datacontenttype": "application/json",
    }
    target = record.get("target")
    if isinstance(target, dict) and target.get("type"):
        envelope["subject"] = f"{target['type']}/{target.get('id')}"
    envelope["data"] = orjson.Fragment(item.body)
    return orjson.dumps(envelope)


def stacuity(item: Item) -> bytes:
    """The event in Stacuity's envelope: ``eventId``, ``eventTime``, ``eventType`` (the
    moniker, else ``herald.<type id>``), ``accountId`` (the organisation), the scope's id
    (``endpointId`` or ``routingTargetId``) when the event has one, ``detail`` (the event's
    detail object, ``{}`` if none) and ``herald`` (the native record, nothing lost)."""
    record = item.record
    moniker = record.get("moniker")
    kind = moniker if moniker else f"herald.{(record.get('event_type') or {}).get('id')}"
    envelope: dict[str, Any] = {
        "eventId": str(item.event_id),
        "eventTime": record.get("timestamp"),
        "eventType": kind,
        "accountId": str((record.get("organisation") or {}).get("id")),
    }
    target = record.get("target")
    if not isinstance(target, dict):
        target = {}
    scope = target.get("type")
    if scope in STACUITY_SCOPES and target.get("id") is not None:
        envelope[STACUITY_SCOPES[scope]] = str(target["id"])
    endpoint = record.get("endpoint")
    if (
        "endpointId" not in envelope
        and isinstance(endpoint, dict)
        and endpoint.get("id") is not None
    ):
        envelope["endpointId"] = str(endpoint["id"])
    detail = record.get("detail")
    envelope["detail"] = (
        detail if isinstance(detail, dict) else {} if detail is None else {"value": detail}
    )
    envelope["herald"] = orjson.Fragment(item.body)
    return orjson.dumps(envelope)


def encode(format: str, items: Sequence[Item], batch: bool) -> tuple[str, bytes]:
    """Content type and body of one request; ``batch`` sends a list even of one event."""
    if format == "ndjson":
        return "application/x-ndjson", b"".join(item.body + b"\n" for item in items)
    if format == "cloudevents":
        if batch:
            body = b"[" + b",".join(cloudevent(item) for item in items) + b"]"
            return "application/cloudevents-batch+json", body
        return "application/cloudevents+json", cloudevent(items[0])
    if format == "stacuity":
        if batch:
            return "application/json", b"[" + b",".join(stacuity(item) for item in items) + b"]"
        return "application/json", stacuity(items[0])
    if format != "native":
        raise ValueError(f"unknown format {format!r}")
    if batch:
        return "application/json", b"[" + b",".join(item.body for item in items) + b"]"
    return "application/json", items[0].body

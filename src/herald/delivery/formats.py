"""What a request carries: ``native`` records, CloudEvents 1.0 (structured mode), NDJSON
or Stacuity's event envelope.

Every format passes the stored record's bytes through: a batch is the records joined
(``[`` ``,`` ``]`` for JSON arrays, lines for NDJSON), and an envelope (CloudEvents,
Stacuity) is its few fields written around the record's bytes. Those fields come from a
partial decode of the record (``Envelope``: only its keys become Python values); the
record itself is never parsed whole nor encoded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

FORMATS = ("native", "cloudevents", "ndjson", "stacuity")
STACUITY_SCOPES = {"endpoint": "endpointId", "routing_target": "routingTargetId"}
CLOUDEVENTS_TYPE_PREFIX = "io.herald.event."
MAX_BATCH_BODY_BYTES = 64 * 1024 * 1024
"""The most record bytes one batch carries, whatever its max_events (up to 10,000) and
max_bytes: a batch's memory and send time stay bounded. A single bigger record still goes."""


class Envelope(msgspec.Struct):
    """The fields of a record that envelopes, object keys and metrics read; the rest of the
    record is skipped by the decoder, never turned into Python values."""

    organisation: Any = None
    event_type: Any = None
    moniker: Any = None
    timestamp: Any = None
    received: Any = None
    target: Any = None
    endpoint: Any = None
    detail: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(Envelope).decode


class Item:
    """One event on its way out: its log position, its id and the stored bytes; parsed
    into ``record`` only if something asks (a filter in Python, a topic template naming
    fields), its envelope fields decoded only if a format or a metric asks."""

    __slots__ = ("_envelope", "_record", "body", "event_id", "seq")

    def __init__(self, seq: int, event_id: int, body: bytes) -> None:
        self.seq = seq
        self.event_id = event_id
        self.body = body
        self._record: dict[str, Any] | None = None
        self._envelope: Envelope | None = None

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = orjson.loads(self.body)
        return self._record

    @property
    def envelope(self) -> Envelope:
        if self._envelope is None:
            self._envelope = _envelope(self.body)
        return self._envelope


def _id_of(value: Any) -> Any:
    """``value["id"]`` of an object, else None (as ``(value or {}).get("id")`` reads it)."""
    return value.get("id") if isinstance(value, dict) else None


def _wrapped(envelope: dict[str, Any], members: bytes) -> bytes:
    """``envelope`` as a JSON object, ``members`` (JSON text already) written last in it."""
    return orjson.dumps(envelope)[:-1] + b"," + members + b"}"


def cloudevent(item: Item) -> bytes:
    """The event as a CloudEvents 1.0 JSON document, the record as ``data``."""
    fields = item.envelope
    kind = fields.moniker or _id_of(fields.event_type)
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(item.event_id),
        "source": f"/herald/organisations/{_id_of(fields.organisation)}",
        "type": f"{CLOUDEVENTS_TYPE_PREFIX}{kind}",
        "time": fields.timestamp,
        "datacontenttype": "application/json",
    }
    target = fields.target
    if isinstance(target, dict) and target.get("type"):
        envelope["subject"] = f"{target['type']}/{target.get('id')}"
    return _wrapped(envelope, b'"data":' + item.body)


def stacuity(item: Item) -> bytes:
    """The event in Stacuity's envelope: ``eventId``, ``eventTime``, ``eventType`` (the
    moniker, else ``herald.<type id>``), ``accountId`` (the organisation), the scope's id
    (``endpointId`` or ``routingTargetId``) when the event has one, ``detail`` (the event's
    detail object, ``{}`` if none) and ``herald`` (the native record, nothing lost)."""
    fields = item.envelope
    moniker = fields.moniker
    kind = moniker if moniker else f"herald.{_id_of(fields.event_type)}"
    envelope: dict[str, Any] = {
        "eventId": str(item.event_id),
        "eventTime": fields.timestamp,
        "eventType": kind,
        "accountId": str(_id_of(fields.organisation)),
    }
    target = fields.target if isinstance(fields.target, dict) else {}
    scope = target.get("type")
    if scope in STACUITY_SCOPES and target.get("id") is not None:
        envelope[STACUITY_SCOPES[scope]] = str(target["id"])
    endpoint = _id_of(fields.endpoint)
    if "endpointId" not in envelope and endpoint is not None:
        envelope["endpointId"] = str(endpoint)
    detail = bytes(fields.detail)
    if detail == b"null":
        detail = b"{}"
    elif not detail.startswith(b"{"):
        detail = b'{"value":%s}' % detail
    return _wrapped(envelope, b'"detail":' + detail + b',"herald":' + item.body)


def encode(format: str, items: Sequence[Item], batch: bool) -> tuple[str, bytes]:
    """Content type and body of one request; ``batch`` sends a list even of one event."""
    if format == "ndjson":
        return "application/x-ndjson", b"\n".join([item.body for item in items]) + b"\n"
    if format == "cloudevents":
        if batch:
            body = b"[" + b",".join([cloudevent(item) for item in items]) + b"]"
            return "application/cloudevents-batch+json", body
        return "application/cloudevents+json", cloudevent(items[0])
    if format == "stacuity":
        if batch:
            return "application/json", b"[" + b",".join([stacuity(item) for item in items]) + b"]"
        return "application/json", stacuity(items[0])
    if format != "native":
        raise ValueError(f"unknown format {format!r}")
    if batch:
        return "application/json", b"[" + b",".join([item.body for item in items]) + b"]"
    return "application/json", items[0].body

"""What a request carries: ``native`` records, CloudEvents 1.0 (structured mode) or NDJSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

FORMATS = ("native", "cloudevents", "ndjson")
CLOUDEVENTS_TYPE_PREFIX = "io.herald.event."


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


def encode(format: str, items: Sequence[Item], batch: bool) -> tuple[str, bytes]:
    """Content type and body of one request; ``batch`` sends a list even of one event."""
    if format == "ndjson":
        return "application/x-ndjson", b"".join(item.body + b"\n" for item in items)
    if format == "cloudevents":
        if batch:
            body = b"[" + b",".join(cloudevent(item) for item in items) + b"]"
            return "application/cloudevents-batch+json", body
        return "application/cloudevents+json", cloudevent(items[0])
    if format != "native":
        raise ValueError(f"unknown format {format!r}")
    if batch:
        return "application/json", b"[" + b",".join(item.body for item in items) + b"]"
    return "application/json", items[0].body

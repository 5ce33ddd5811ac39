"""emnify and 1NCE event records, as their data streamers send them, normalised to ``EventIn``.

Both providers send the emnify record shape. Real streams vary: ``alert`` as 0/1,
timestamps without a zone or with ``+0000``, ``event_source.name`` instead of
``description``, severities spelt ``WARN``, ``detail`` as a JSON-encoded string, numbers as
strings, extra fields. The normalised event keeps the provider's id (so a retransmission is
stored once) and the original record as its payload (so nothing the provider said is lost,
the provider's own organisation object included: the ingest token's organisation is
Herald's).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from herald.catalog import normalise_severity, normalise_source
from herald.ingest.errors import RecordError

ORIGINAL_CONTENT_TYPE = "application/json"
_NESTED = ("endpoint", "sim", "imsi", "user")
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no", ""}
# A bare ISO 8601 time as a JSON value (1NCE's quota details send them unquoted).
_BARE_TIME = re.compile(r"(:\s*)(\d{4}-\d{2}-\d{2}[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)(\s*[,}\]])")


def normalise_record(record: object) -> dict[str, Any]:
    """One provider record as an ``EventIn`` document; ``RecordError`` naming the field if not."""
    if not isinstance(record, dict):
        raise RecordError("body", "each record must be a JSON object")
    if record.get("id") is None:
        raise RecordError("id", "required: the provider's record id")
    event: dict[str, Any] = {
        "id": _record_id(record["id"]),
        "timestamp": record.get("timestamp"),
        "event_type": _event_type(record.get("event_type")),
        "description": record.get("description"),
        "detail": parse_detail(record.get("detail")),
        "payload": {"content_type": ORIGINAL_CONTENT_TYPE, "data": record},
    }
    for key, normalise in (
        ("event_severity", normalise_severity),
        ("event_source", normalise_source),
    ):
        level = _level(record.get(key), key, normalise)
        if level is not None:
            event[key] = {"id": level}
    alert = _alert(record.get("alert"))
    if alert is not None:
        event["alert"] = alert
    for key in _NESTED:
        value = record.get(key)
        if isinstance(value, dict) and any(v is not None for v in value.values()):
            event[key] = value
        elif value is not None and not isinstance(value, dict):
            raise RecordError(key, "must be an object or null")
    return event


def parse_detail(detail: object) -> object:
    """A ``detail`` sent as a JSON-encoded string, decoded (leniently); anything else as is."""
    if not isinstance(detail, str):
        return detail
    for text in (detail, _BARE_TIME.sub(r'\1"\2"\3', detail)):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
    return detail


def _record_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise RecordError("id", "must be a number or a non-empty string")
    return str(value).strip()


def _event_type(value: object) -> dict[str, int]:
    if not isinstance(value, dict) or value.get("id") is None:
        raise RecordError("event_type.id", "required")
    return {"id": _integer(value["id"], "event_type.id")}


def _integer(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)  # isdigit() alone lets "²" through, which int() refuses
    raise RecordError(field, "must be an integer")


def _level(value: object, key: str, normalise: Any) -> int | None:
    """A severity or source object by id, or by its description (or ``name``) alone."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordError(key, "must be an object")
    for part in ("id", "description", "name"):
        raw = value.get(part)
        if isinstance(raw, int | str) and not isinstance(raw, bool):
            level: int | None = normalise(raw)
            if level is None:
                raise RecordError(f"{key}.{part}", f"unknown value {raw!r}")
            return level
    return None


def _alert(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RecordError("alert", "must be true/false or 1/0")

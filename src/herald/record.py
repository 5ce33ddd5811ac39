"""The event record as the store keeps and serves it: ``NewEvent`` and the null keys.

Free of pydantic (``herald.model`` holds the models that check what producers send), so the
store, and the commands that only read it (``herald token list``), start without building
models (``tests/cli/test_startup.py``). ``herald.model`` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

JSON = Any
"""Free JSON (objects, arrays, scalars) as a producer sent it."""

NULL_WHEN_ABSENT = ("endpoint", "sim", "imsi", "user", "detail")
"""The record's standard nested objects: served as ``null`` when an event has none, as
emnify's and 1NCE's records do ("empty, nested JSON objects are listed as NULL")."""
_BEFORE = "target"  # where Herald's records have them (after description, in this order)


@dataclass(slots=True)
class NewEvent:
    """A validated event ready for the store: the record plus its indexed columns."""

    organisation_id: int
    timestamp_ms: int
    received_ms: int
    type_id: int
    severity: int
    source: int
    alert: bool
    criticality: int
    provider: str
    external_id: str | None
    record: dict[str, JSON]
    body: bytes | None = None
    """The record serialised (``herald.events.build``), its ``id`` null: the store writes
    these bytes with the id it assigns (``stored_body``). None: serialised at append."""

    def stored_body(self, event_id: int) -> bytes:
        """The record as stored and served, with its id (the event is not modified)."""
        if self.body is not None:
            return b'{"id":%d%b' % (event_id, self.body[_NULL_ID:])
        return orjson.dumps(with_null_keys({**self.record, "id": event_id}))

    def nested(self, key: str) -> dict[str, JSON]:
        """The record's nested object ``key`` (``endpoint``, ``sim``...), or an empty dict."""
        value = self.record.get(key)
        return value if isinstance(value, dict) else {}


_NULL_ID = len(b'{"id":null')
_NULL_KEY_PATTERNS = tuple(f'"{key}":'.encode() for key in NULL_WHEN_ABSENT)


def with_null_keys(record: dict[str, JSON]) -> dict[str, JSON]:
    """``record`` with the keys of ``NULL_WHEN_ABSENT`` it lacks added as ``null`` before
    ``target``; ``record`` itself when it has them all."""
    missing = [key for key in NULL_WHEN_ABSENT if key not in record]
    if not missing:
        return record
    filled: dict[str, JSON] = {}
    for key, value in record.items():
        if key == _BEFORE:
            filled.update(dict.fromkeys(missing))
        filled[key] = value
    if _BEFORE not in record:
        filled.update(dict.fromkeys(missing))
    return filled


def served_record(body: bytes) -> bytes:
    """A stored record as every read path serves it (``with_null_keys``: events stored
    before Herald kept the null keys get them). A record that has them all is returned as
    it is (the same bytes)."""
    if all(pattern in body for pattern in _NULL_KEY_PATTERNS):
        # Every record written since the keys were kept has them all: served unparsed. (A
        # key inside a string is escaped, so only a nested object's key of the same name can
        # match here; such an old record keeps its shape.)
        return body
    record = orjson.loads(body)
    if not isinstance(record, dict):
        return body
    filled = with_null_keys(record)
    return body if filled is record else orjson.dumps(filled)

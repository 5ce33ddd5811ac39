"""The state's lean decode (msgspec, the fields it reads) against the whole record parsed:
the same effect on the state for every reference record and for hostile ones."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from herald.devices import state as ds
from herald.devices.decode import record_fields
from tests.ingest.examples import emnify_examples, onece_examples, stacuity_examples

TYPES = (1, 2, 3, 4, 5, 8, 9, 11, 15, 16, 19, 42, 56, 1006, 1013, 10001)


def _effect(type_id: int, record: Any) -> tuple[str | None, ds.Effect] | None:
    event = ds.device_event(1, type_id, record)
    if event is None:
        return None
    return ds.endpoint_key(event.record), ds.effect(event)


def _same(type_id: int, body: bytes) -> None:
    whole = orjson.loads(body)
    lean = record_fields(type_id, body)
    if not isinstance(whole, dict):
        assert lean is None
        return
    assert lean is not None
    assert _effect(type_id, lean) == _effect(type_id, whole)


def _references() -> list[dict[str, Any]]:
    return [
        *emnify_examples(),
        *(record for _, record in onece_examples()),
        *(envelope for envelope in stacuity_examples()),
    ]


def test_every_reference_record_has_the_same_effect_either_way() -> None:
    records = _references()
    assert len(records) > 50
    for record in records:
        body = orjson.dumps(record)
        for type_id in {*TYPES, record.get("event_type", {}).get("id", 0)}:
            _same(type_id, body)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"7",
        b'"text"',
        b"{}",
        b'{"endpoint": null, "detail": []}',
        b'{"endpoint": {"id": 99999999999999999999999, "name": "x"}}',
        b'{"endpoint": {"id": -1, "name": "12"}, "detail": {"pdp_context": [1, 2]}}',
        b'{"endpoint": {"id": 7, "tags": "a\\u0000b"}, "description": "VLR=\'v\\u0000\'"}',
        b'{"endpoint": {"id": 7}, "detail": {"name": "A", "country": "DE", "mnc": "01"}}',
        b'{"endpoint": {"id": 7}, "event_source": {"id": 1}, "event_severity": {"id": 1}}',
        b'{"endpoint": {"id": 7}, "endpoint": {"id": 8}}',  # a repeated key: the last one
        b'{"endpoint": {"id": 7, "name": "' + b"n" * 5000 + b'"}, "timestamp": 12}',
        b'{"unknown": {"deep": ' + b"[" * 500 + b"]" * 500 + b'}, "endpoint": {"id": 7}}',
    ],
)
def test_hostile_records_have_the_same_effect_either_way(body: bytes) -> None:
    for type_id in TYPES:
        _same(type_id, body)


def test_a_broken_record_is_none() -> None:
    assert record_fields(1, b'{"endpoint": ') is None
    assert record_fields(3, b"\xff") is None

"""The event codec on its own: what it refuses and how it says so, what it keeps, and the
schema it gives the OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from herald.events import codec
from herald.events.codec import Checked, FieldError, check, check_all
from tests.events.corpus import DOCUMENTS, new_path

LAX_ONLY: list[tuple[dict[str, Any], str]] = [
    ({"event_type": {"id": True}}, "event_type.id"),
    ({"event_type": {"id": 3.0}}, "event_type.id"),
    ({"event_type": {"id": "3"}}, "event_type.id"),
    ({"event_type": {"id": 3}, "endpoint": {"id": True}}, "endpoint.id"),
    ({"event_type": {"id": 3}, "endpoint": {"id": " 17"}}, "endpoint.id"),
    ({"event_type": {"id": 3}, "organisation": {"id": "007"}}, "organisation.id"),
    ({"event_type": {"id": 3}, "event_severity": {"id": False}}, "event_severity.id"),
    ({"event_type": {"id": 3}, "alert": "yes"}, "alert"),
    ({"event_type": {"id": 3}, "alert": 1.0}, "alert"),
    ({"event_type": {"id": 3}, "criticality": True}, "criticality"),
    ({"event_type": {"id": 3}, "criticality": {"id": None}}, "criticality"),
    ({"event_type": {"id": 3}, "id": True}, "id"),
]
"""Spellings pydantic's lax mode took and the codec refuses on purpose: a boolean or a
fraction where a number goes, numbers in text other than plainly, "yes" for true, the served
criticality with a null id."""


@pytest.mark.parametrize(("document", "field"), LAX_ONLY)
def test_what_only_pydantic_took_is_refused_naming_the_field(
    document: dict[str, Any], field: str
) -> None:
    refused = check(document)
    assert isinstance(refused, list)
    assert [error.field for error in refused] == [field]


def test_plain_spellings_are_read() -> None:
    checked = check(
        {
            "event_type": {"id": 3},
            "endpoint": {"id": "17"},
            "alert": "true",
            "criticality": "2",
            "organisation": {"id": 5.0},
        }
    )
    assert isinstance(checked, Checked)
    event = checked.event
    assert event.endpoint is not None and event.endpoint.id == 17
    assert event.alert is True and event.criticality == 2
    assert event.organisation is not None and event.organisation.id == 5


def test_every_bad_field_is_named_with_its_reason() -> None:
    refused = check(
        {
            "event_type": {"id": -1},
            "alert": "maybe",
            "description": "d" * 4097,
            "timestamp": "soon",
            "target": {"type": "9lives", "id": "1"},
        }
    )
    assert refused == [
        FieldError("event_type.id", "Expected `int` >= 0"),
        FieldError("alert", "Expected `bool | null`, got `str`"),
        FieldError("description", "Expected `str` of length <= 4096"),
        FieldError("timestamp", "must be an ISO 8601 time such as 2026-11-01T00:00:00Z"),
        FieldError("target.type", "must match ^[a-z][a-z0-9_]{0,31}$"),
    ]
    assert check({"event_type": {}}) == [FieldError("event_type.id", "Field required")]
    assert check("an event") == [FieldError("body", "Expected `object`, got `str`")]
    assert check({"criticality": {"id": 9}}) == [FieldError("criticality", "Expected `int` <= 5")]


def test_a_batch_is_checked_in_one_call_and_its_bad_items_named() -> None:
    good = {"event_type": {"id": 3}, "streamer": {"seq": 1}}
    results = check_all([good, {"event_type": {"id": "x"}}, good])
    assert isinstance(results[0], Checked) and isinstance(results[2], Checked)
    assert results[0].extra == {"streamer": {"seq": 1}}
    assert results[1] == [FieldError("event_type.id", "Expected `int`, got `str`")]


def test_herald_form_timestamps_and_others_read_alike() -> None:
    forms = [
        "2026-11-20T09:00:00.123Z",
        "2026-11-20T09:00:00.123+00:00",
        "2026-11-20T10:00:00.123+0100",
        "2026-11-20T09:00:00.123",
    ]
    times = set()
    for form in forms:
        checked = check({"timestamp": form})
        assert isinstance(checked, Checked), form
        times.add(checked.timestamp_ms)
    assert len(times) == 1
    assert isinstance(check({"timestamp": "2026-02-30T10:00:00.000Z"}), list)
    assert isinstance(check({"timestamp": "1969-12-31T23:59:59.999Z"}), list)


def test_the_schema_is_the_types() -> None:
    ref, definitions = codec.schema()
    assert ref == {"$ref": "#/components/schemas/EventIn"}
    event_in = definitions["EventIn"]
    assert set(event_in["properties"]) == set(codec.EventIn.__struct_fields__)
    assert event_in["additionalProperties"] is True
    assert definitions["TypeRef"]["properties"]["id"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 2**31 - 1,
    }
    assert "description" in event_in["properties"]["criticality"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
def test_any_document_is_stored_as_valid_json_or_refused_naming_fields(
    document: dict[str, Any],
) -> None:
    """Never an exception: a stored record is JSON whose id is the store's; a refusal names
    at least one field."""
    outcome, detail = new_path(orjson.loads(orjson.dumps(document)), True, "api", None)
    if outcome == "stored":
        assert isinstance(detail, tuple)
        assert orjson.loads(detail[0])["id"] == 1
    else:
        assert detail


FIRST_CHECK = """
import msgspec._utils as utils

evaluated = []
evaluate = utils._eval_type
utils._eval_type = lambda *args: (evaluated.append(args), evaluate(*args))[1]
from herald.events import codec

at_import = len(evaluated)
good = {"event_type": {"id": 3}, "endpoint": {"id": 1}, "sim": {"id": 2}}
codec.check_all([good, {**good, "sim": {"id": "two"}, "user": {"id": []}}])
print(at_import, len(evaluated) - at_import)
"""


def test_the_codecs_types_are_built_at_import_not_by_the_first_request() -> None:
    """msgspec builds a Struct's type information on its first use; two threads doing so
    at once crashed ``serve`` (a segfault in msgspec under the first concurrent batches).
    In a fresh interpreter: every annotation is evaluated while the module is imported,
    none by the first batch checked (a good event and a bad one: every path)."""
    run = subprocess.run(
        [sys.executable, "-c", FIRST_CHECK], capture_output=True, text=True, check=True
    )
    at_import, on_first_check = map(int, run.stdout.split())
    assert at_import > 0 and on_first_check == 0

"""The emnify/1NCE record normaliser on its own: every variation real streams send."""

from __future__ import annotations

from typing import Any

import pytest

from herald.events.codec import Checked, check
from herald.ingest import RecordError, normalise_record
from herald.ingest.records import parse_detail

BASE: dict[str, Any] = {
    "id": 42,
    "timestamp": "2021-10-27T08:38:02.000Z",
    "event_type": {"id": 3, "description": "Create PDP Context"},
    "event_severity": {"id": 0, "description": "Info"},
    "event_source": {"id": 0, "description": "Network"},
    "organisation": {"id": 1825, "name": "Test Org"},
    "alert": False,
    "description": "PDP Context accepted",
}


def test_the_provider_org_is_dropped_and_the_original_kept() -> None:
    event = normalise_record(BASE)
    assert "organisation" not in event
    assert event["payload"] == {"content_type": "application/json", "data": BASE}
    assert event["id"] == "42"
    assert isinstance(check(event), Checked)


@pytest.mark.parametrize(("raw", "expected"), [(1, True), (0, False), ("true", True), (None, None)])
def test_alert_as_number_or_text(raw: object, expected: bool | None) -> None:
    assert normalise_record({**BASE, "alert": raw}).get("alert") == expected


def test_levels_by_name_or_as_strings() -> None:
    event = normalise_record(
        {**BASE, "event_severity": {"description": "WARN"}, "event_source": {"name": "API"}}
    )
    assert (event["event_severity"], event["event_source"]) == ({"id": 1}, {"id": 2})
    event = normalise_record({**BASE, "event_severity": {"id": "2"}, "event_type": {"id": "5"}})
    assert (event["event_severity"], event["event_type"]) == ({"id": 2}, {"id": 5})


def test_detail_as_a_json_string_even_with_bare_times() -> None:
    assert parse_detail('{"a": 1}') == {"a": 1}
    assert parse_detail('{"expiry_date": 2022-03-31T00:00:00Z, "v": 2}') == {
        "expiry_date": "2022-03-31T00:00:00Z",
        "v": 2,
    }
    assert parse_detail("not json at all") == "not json at all"
    assert parse_detail({"kept": True}) == {"kept": True}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"event_type": None}, "event_type.id"),
        ({"event_type": {"id": "three"}}, "event_type.id"),
        ({"alert": "maybe"}, "alert"),
        ({"event_severity": {"id": 7}}, "event_severity.id"),
        ({"endpoint": "tracker"}, "endpoint"),
    ],
)
def test_unusable_records_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as caught:
        normalise_record({**BASE, **change})
    assert caught.value.field == field


def test_null_nested_objects_are_left_out() -> None:
    event = normalise_record({**BASE, "user": None, "sim": {"id": None}, "endpoint": {"id": "7"}})
    assert "user" not in event and "sim" not in event
    checked = check(event)
    assert isinstance(checked, Checked) and checked.event.endpoint is not None

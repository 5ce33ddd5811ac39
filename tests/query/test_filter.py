"""EventFilter's predicate over records; the SQL side is checked against it in tests/store."""

from __future__ import annotations

from typing import Any

import pytest

from herald.query.fields import BY_NAME, FIELDS, SORT_COLUMNS, STATS_GROUPS, Match
from herald.query.filter import EventFilter

FLEET = {"organisation": {"id": 1}, "endpoint": {"id": 5, "tags": "fleet_a,eu"}}
FLEET_UPPER = {"organisation": {"id": 1}, "endpoint": {"id": 6, "tags": "Fleet_A"}}
OTHER = {"organisation": {"id": 1}, "endpoint": {"id": 7, "tags": "fleetXa"}}


def selected(flt: EventFilter, *records: dict[str, Any]) -> list[int]:
    return [r["endpoint"]["id"] for r in records if flt.matches(r)]


def test_tags_are_substrings_ignoring_ascii_case_with_literal_wildcards() -> None:
    assert selected(EventFilter(tags=("fleet_a",)), FLEET, FLEET_UPPER, OTHER) == [5, 6]
    assert selected(EventFilter(tags=("fleet",)), FLEET, FLEET_UPPER, OTHER) == [5, 6, 7]
    assert selected(EventFilter(tags=("%",)), FLEET, FLEET_UPPER, OTHER) == []
    assert selected(EventFilter(tags=("eu", "nope")), FLEET, FLEET_UPPER, OTHER) == [5]


def test_only_ascii_letters_fold() -> None:
    record = {"description": "Émile"}
    assert EventFilter(description="émile").matches(record) is False  # as SQLite's LIKE
    assert EventFilter(description="MILE").matches(record) is True


def test_scope_range_and_terms_combine() -> None:
    record = {
        "organisation": {"id": 2},
        "timestamp": "2026-11-01T00:00:00.000Z",
        "event_type": {"id": 5},
        "alert": False,
    }
    assert EventFilter((2,), type_ids=(3, 5), alert=False).matches(record)
    assert not EventFilter((1,)).matches(record)
    assert not EventFilter(()).matches(record)
    assert EventFilter(None).matches(record)
    assert not EventFilter(type_ids=(3,)).matches(record)
    assert not EventFilter(alert=True).matches(record)
    assert not EventFilter(from_ms=1_800_000_000_000).matches(record)
    assert EventFilter(until_ms=1_800_000_000_000).matches(record)


def test_a_bool_never_equals_a_number() -> None:
    assert not EventFilter(type_ids=(1,)).matches({"event_type": {"id": True}})


def test_replace_keeps_the_rest() -> None:
    flt = EventFilter((1,), type_ids=(5,), tags=("a",))
    wider = EventFilter((1,), type_ids=(5,), tags=("a",), endpoint_ids=(7,))
    assert flt.replace(endpoint_ids=(7,)) == wider
    assert flt.replace(type_ids=None).term("type") is None
    assert flt.replace(from_ms=3).from_ms == 3


def test_unknown_attributes_are_refused() -> None:
    with pytest.raises(TypeError):
        EventFilter(colours=("red",))


def test_the_field_table_is_consistent() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    for field in FIELDS:
        if field.match is not None:
            assert field.column, f"{field.name}: a filter needs a column to run in SQL"
        if field.text_field:
            assert BY_NAME[field.text_field].match is Match.ANY_OF
    assert SORT_COLUMNS["timestamp"] == "ts" and STATS_GROUPS["country"] == "country"

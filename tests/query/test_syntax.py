"""The q syntax: parsing into an EventFilter, errors naming the field, the handler form."""

from __future__ import annotations

import pytest

from herald.query.filter import EventFilter
from herald.query.syntax import (
    FilterError,
    Term,
    legacy_handler_filter,
    parse_filter,
    q_terms,
    to_q,
)

NOW = 1_800_000_000_000


def parse(q: str, scope: tuple[int, ...] | None = (1,)) -> EventFilter:
    return parse_filter(q_terms(q), scope=scope, now=NOW, known_moniker=lambda m: m == "known_v1")


def error(q: str) -> tuple[str, str]:
    with pytest.raises(FilterError) as caught:
        parse(q)
    return caught.value.field, caught.value.reason


def test_terms_values_and_names() -> None:
    flt = parse("type:3|5,severity:warn,source:API,alert:true,endpoint:tracker-5,user:7")
    assert flt.term("type") == (3, 5)
    assert flt.term("severity") == (1,)
    assert flt.term("source") == (2,)
    assert flt.term("alert") == (True,)
    assert flt.term("endpoint_name") == ("tracker-5",)  # a name given for the endpoint id
    assert flt.term("user") == (7,)
    assert parse("code:5") == parse("type:5")
    assert parse("severity:warning") == parse("severity:1")
    assert parse("iccid_with_luhn:89883000000000000123").term("iccid") == ("8988300000000000012",)


def test_organisation_is_narrowed_to_the_scope() -> None:
    assert parse("organisation:1|2").organisation_ids == (1,)
    assert parse("organisation:2").organisation_ids == ()
    assert parse("", scope=None).organisation_ids is None
    assert parse("organisation:2", scope=None).organisation_ids == (2,)


def test_one_end_of_a_range_runs_to_now() -> None:
    assert (parse("from:2020-01-01").from_ms, parse("from:2020-01-01").until_ms) == (
        1_577_836_800_000,
        NOW,
    )
    until = parse("until:2020-01-01")
    assert (until.from_ms, until.until_ms) == (1_577_836_800_000, NOW)
    assert error("from:2020-01-02,until:2020-01-01") == ("q.from", "is after until")


def test_timestamp_selects_the_utc_day_of_its_moment() -> None:
    """emnify: ``timestamp`` (YYYY-MM-DDTHH:mm:ssZ) is "for querying events of 1 day".
    Regression: it was offered as a filter field and raised TypeError (a 500)."""
    day = 1_577_836_800_000  # 2020-01-01T00:00:00Z
    last = day + 86_400_000 - 1
    for q in ("timestamp:2020-01-01T00:00:00Z", "timestamp:2020-01-01T17:45:00Z"):
        flt = parse(q)
        assert (flt.from_ms, flt.until_ms, flt.terms) == (day, last, ())
    assert parse("timestamp:2020-01-01T03:00:00+05:00").from_ms == day - 86_400_000  # 12-31
    within = parse("timestamp:2020-01-01,from:2020-01-01T12:00:00Z,until:2020-01-03")
    assert (within.from_ms, within.until_ms) == (day + 43_200_000, last)
    # with one end only, the other runs to now (which is after the day): the day is kept
    assert (parse("timestamp:2020-01-01,from:2019-06-01").until_ms) == last
    assert error("timestamp:2020-01-01,from:2020-01-02,until:2020-01-03") == (
        "q.timestamp",
        "no moment of this day is within the other time terms",
    )
    assert error("timestamp:2020-01-01|2020-01-02")[0] == "q.timestamp"
    assert error("timestamp:today")[0] == "q.timestamp"
    plain = parse_filter([Term("timestamp", "2020-01-01", "timestamp")], scope=None, now=NOW)
    assert (plain.from_ms, plain.until_ms) == (day, last)


@pytest.mark.parametrize(
    ("q", "field", "reason"),
    [
        ("criticality:9", "q.criticality", "unknown criticality '9'"),
        ("severity:loud", "q.severity", "unknown severity 'loud'"),
        ("type:x", "q.type", "'x' is not a whole number"),
        ("type:99999999999999999999", "q.type", "is not a whole number"),
        ("colour:red", "q.colour", "unknown filter field"),
        ("alert:maybe", "q.alert", "must be true or false"),
        ("type:", "q.type", "empty value"),
        ("moniker:nope_v1", "q.moniker", "unknown moniker"),
        ("tags:a\x00b", "q.tags", "NUL"),
        ("from:yesterday", "q.from", "ISO 8601"),
        ("from:1969-12-31", "q.from", "between 1970-01-01"),
        ("nocolon", "q", "is not field:value"),
    ],
)
def test_bad_terms_name_their_field(q: str, field: str, reason: str) -> None:
    got_field, got_reason = error(q)
    assert got_field == field
    assert reason in got_reason


def test_values_are_bounded() -> None:
    assert "at most 1000 values" in error("type:" + "|".join(["1"] * 1001))[1]
    assert "at most 256 characters" in error("tags:" + "x" * 257)[1]
    assert "at most 20 substrings" in error("tags:" + "|".join(["x"] * 21))[1]


def test_the_q_text_round_trips() -> None:
    flt = parse("tags:fleet_a|eu,type:5|3,alert:false,severity:critical")
    text = to_q(flt)
    assert text == "type:5|3,severity:2,alert:false,tags:fleet_a|eu"
    assert parse(text) == flt


def test_plain_parameters_name_themselves() -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter([Term("criticality", "7", "criticality")], scope=None)
    assert caught.value.field == "criticality"


def test_legacy_handler_filters_become_q_text() -> None:
    def type_of(moniker: str) -> int | None:
        return {"endpointdatasessioncreated_v1": 3}.get(moniker)

    old = {
        "event_types": [5],
        "monikers": ["endpointdatasessioncreated_v1"],
        "severities": [1, 2],
        "alert_only": True,
        "endpoint_ids": [7],
        "tags": ["fleet_a"],
    }
    assert legacy_handler_filter(old, type_of) == (
        "type:5|3,severity:1|2,alert:true,endpoint:7,tags:fleet_a"
    )
    assert legacy_handler_filter({"monikers": ["x_v1"]}, type_of) == "moniker:x_v1"
    assert legacy_handler_filter({}, type_of) == ""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.timefmt import format_ms, parse_timestamp, to_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-10-27T08:38:02.000Z", datetime(2021, 10, 27, 8, 38, 2, tzinfo=UTC)),
        ("2017-10-26T07:28:00.000+0000", datetime(2017, 10, 26, 7, 28, tzinfo=UTC)),
        ("2019-01-21T09:36:17Z", datetime(2019, 1, 21, 9, 36, 17, tzinfo=UTC)),
        ("2019-01-21T09:36:17", datetime(2019, 1, 21, 9, 36, 17, tzinfo=UTC)),
        ("2019-01-21T11:36:17+02:00", datetime(2019, 1, 21, 9, 36, 17, tzinfo=UTC)),
        ("2021-10-24T12:44:09.901Z", datetime(2021, 10, 24, 12, 44, 9, 901000, tzinfo=UTC)),
    ],
)
def test_parses_the_forms_providers_send(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


def test_format_is_utc_with_milliseconds() -> None:
    moment = datetime(2021, 10, 24, 12, 44, 9, 901000, tzinfo=UTC)
    assert format_ms(to_ms(moment)) == "2021-10-24T12:44:09.901Z"
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"


def test_to_ms_takes_naive_as_utc_and_truncates_microseconds() -> None:
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 999)) == 1000
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 1999, tzinfo=UTC)) == 1001


def test_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+00:09",
        "9999-12-31T23:59:59-23:59",
        "1969-12-31T23:59:59Z",
        "0999-01-01",
    ],
)
def test_refuses_what_herald_cannot_store_or_serve(text: str) -> None:
    """Regression: the first two overflowed converting to UTC (a 500 on every route)."""
    with pytest.raises(ValueError, match="between 1970"):
        parse_timestamp(text)


def test_the_edges_of_the_range_parse_and_format_with_four_digit_years() -> None:
    assert format_ms(to_ms(parse_timestamp("1970-01-01T01:00:00+01:00"))) == (
        "1970-01-01T00:00:00.000Z"
    )
    latest = parse_timestamp("9999-12-31T23:59:59.999Z")
    assert format_ms(to_ms(latest)) == "9999-12-31T23:59:59.999Z"
    assert format_ms(-62135596800000) == "0001-01-01T00:00:00.000Z"  # old rows still print


@given(st.integers(min_value=-62135596800000, max_value=253402300799999))
def test_format_ms_is_isoformat_to_the_millisecond(ms: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert format_ms(ms) == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

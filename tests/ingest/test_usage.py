"""Usage records read exactly, or refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from herald.ingest import RecordError
from herald.ingest.usage import MAX_UNITS, Usage, is_usage_record, parse_usage, units
from herald.timefmt import parse_timestamp, to_ms

END = "2026-11-29T10:15:00Z"


def record(**fields: Any) -> dict[str, Any]:
    return {
        "id": 9_007_199_254_740_993,  # beyond a double's integers: kept as written
        "traffic_type": {"id": 5, "description": "Data"},
        "start_timestamp": "2026-11-29T10:00:00+0000",
        "end_timestamp": END,
        "endpoint": {"id": 8163445, "name": "Test Sim 2"},
        "volume": {"total": 0.641984, "rx": 0.418811, "tx": 0.223173},
        **fields,
    }


def test_a_data_record_in_millionths_of_a_mb() -> None:
    assert parse_usage(record()) == Usage(
        record_id="9007199254740993",
        endpoint_id=8163445,
        traffic_type=5,
        start_ms=to_ms(parse_timestamp("2026-11-29T10:00:00Z")),
        end_ms=to_ms(parse_timestamp(END)),
        rx=418_811,
        tx=223_173,
        total=641_984,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, 100_000),
        ("0.000001", 1),
        ("12.500000", 12_500_000),
        (3, 3_000_000),
        (99_999_999.999999, MAX_UNITS),
        ("1e-6", 1),
    ],
)
def test_volumes_are_read_as_the_decimals_written(value: object, expected: int) -> None:
    assert units(value, "volume.rx", 1_000_000) == expected


def test_sms_records_count_messages_and_take_the_type_by_name() -> None:
    sms = parse_usage(
        record(traffic_type={"description": "SMS"}, volume={"rx": 0, "tx": "1.000000"})
    )
    assert (sms.traffic_type, sms.rx, sms.tx, sms.total) == (6, 0, 1, 1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"id": None}, "id"),
        ({"id": True}, "id"),
        ({"traffic_type": {"id": 7}}, "traffic_type.id"),
        ({"traffic_type": {"description": "Voice"}}, "traffic_type.id"),
        ({"endpoint": {"name": "no id"}}, "endpoint.id"),
        ({"endpoint": {"id": -1}}, "endpoint.id"),
        ({"end_timestamp": None}, "end_timestamp"),
        ({"end_timestamp": "29.11.2026"}, "end_timestamp"),
        ({"start_timestamp": "2026-11-29T11:00:00Z"}, "start_timestamp"),
        ({"volume": None}, "volume"),
        ({"volume": {"rx": 0.0000001, "tx": 0}}, "volume.rx"),
        ({"volume": {"rx": -1, "tx": 0}}, "volume.rx"),
        ({"volume": {"rx": "NaN", "tx": 0}}, "volume.rx"),
        ({"volume": {"rx": "1e-999999999", "tx": 0}}, "volume.rx"),  # not clamped to 0
        ({"volume": {"rx": "1e999999999999", "tx": 0}}, "volume.rx"),  # no overflow
        ({"volume": {"rx": "1e-99999999999999999999999", "tx": 0}}, "volume.rx"),
        ({"volume": {"rx": "0." + "1" * 80, "tx": 0}}, "volume.rx"),
        ({"volume": {"rx": 1, "tx": "lots"}}, "volume.tx"),
        ({"volume": {"rx": 1, "tx": 1, "total": 1e9}}, "volume.total"),
        ({"traffic_type": {"id": 6}, "volume": {"rx": 0.5, "tx": 0}}, "volume.rx"),
    ],
)
def test_an_unusable_record_names_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_usage(record(**fields))
    assert caught.value.field == field


def test_usage_records_are_told_from_event_records() -> None:
    assert is_usage_record(record())
    assert not is_usage_record({**record(), "event_type": {"id": 5}})
    assert not is_usage_record({"id": 1, "event_type": {"id": 5}})
    assert not is_usage_record([record()])

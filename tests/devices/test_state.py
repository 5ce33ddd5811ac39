"""The state machine alone: events in, state out, no store and no clock."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import pytest

from herald.devices import state as ds
from herald.devices.state import DeviceEvent, DeviceState, Status
from herald.timefmt import format_ms

T0 = 1_790_000_000_000
MIN = 60_000
VODAFONE = {
    "id": 3,
    "name": "Vodafone",
    "country": {"id": 74, "name": "Germany", "mcc": "262", "iso_code": "de"},
    "mnc": [{"id": 3, "mnc": "02"}],
}
ORANGE = {"id": 9, "name": "Orange", "country": {"id": 67, "name": "France", "mcc": "208"}}
_ids = itertools.count(1)


def ev(type_id: int, minute: int, **fields: Any) -> DeviceEvent:
    record: dict[str, Any] = {
        "timestamp": format_ms(T0 + minute * MIN),
        "event_type": {"id": type_id},
        "endpoint": {"id": 7, "name": "tracker", "ip_address": "10.0.0.7"},
        "description": "",
        **fields,
    }
    return DeviceEvent(next(_ids), type_id, T0 + minute * MIN, record)


def fold(events: list[DeviceEvent]) -> DeviceState:
    folded = DeviceState()
    for event in events:
        folded = ds.apply(folded, event)
    return folded


def session(minute: int, apn: str = "em", network: dict[str, Any] = VODAFONE) -> DeviceEvent:
    pdp = {"apn": apn, "rat_type": 6, "ue_ip_address": "100.64.0.7", "big": "x" * 10_000}
    return ev(3, minute, detail={**network, "pdp_context": pdp})


STORY = [
    (ev(1, 0, detail=VODAFONE, description="now attached to VLR='491720000095'."), Status.ATTACHED),
    (
        ev(2, 1, detail=VODAFONE, description="now attached to SGSN='4917', IP='1.2.3.4'."),
        Status.ATTACHED,
    ),
    (session(2), Status.ONLINE),
    (ev(2, 3, detail=ORANGE), Status.ONLINE),  # a location update keeps the session
    (ev(5, 4), Status.ATTACHED),
    (session(5, apn="iot"), Status.ONLINE),
    (ev(15, 6), Status.OFFLINE),  # a purge ends the session too
    (ev(1, 7, detail=VODAFONE), Status.ATTACHED),
    (ev(19, 8, description="Quota used up"), Status.BLOCKED),
    (ev(2, 9, detail=VODAFONE), Status.BLOCKED),  # attaching does not lift a block
    (ev(56, 10), Status.ATTACHED),  # a new quota does
    (ev(9, 11), Status.BLOCKED),  # SIM suspended
    (ev(8, 12), Status.ATTACHED),  # and activated again
]


def test_a_devices_story_step_by_step() -> None:
    folded = DeviceState()
    for event, expected in STORY:
        folded = ds.apply(folded, event)
        assert ds.status(folded) == expected, event.record
    assert folded.last_event_ms == T0 + 12 * MIN


def test_the_story_in_any_order_or_twice_ends_the_same() -> None:
    events = [event for event, _ in STORY]
    expected = fold(events)
    rng = random.Random(18)
    for _ in range(50):
        shuffled = events + rng.sample(events, 5)
        rng.shuffle(shuffled)
        assert fold(shuffled) == expected
        assert ds.dumps(fold(shuffled)) == ds.dumps(expected)


def test_an_event_naming_the_endpoint_by_id_only_keeps_its_name() -> None:
    named = ev(1, 0, detail=VODAFONE, endpoint={"id": 7, "name": "GPS Tracker", "imei": "35"})
    bare = ev(2, 5, endpoint={"id": 7})
    nulls = ev(5, 6, endpoint={"id": 7, "name": None, "imei": None})
    renamed = ev(2, 3, endpoint={"id": 7, "name": "Tracker 2"})
    expected = {"id": 7, "name": "GPS Tracker", "imei": "35"}
    for order in itertools.permutations([named, bare, nulls]):
        assert ds.endpoint(fold(list(order))) == expected
    # a newer name wins, in any order; fields are newest-first each on its own
    for order in itertools.permutations([named, bare, renamed]):
        assert ds.endpoint(fold(list(order))) == {"id": 7, "name": "Tracker 2", "imei": "35"}


def test_a_state_kept_before_the_fields_were_split_loads_as_before() -> None:
    kept = {
        "last": T0,
        "times": {"cs_attach": T0},
        "registers": {"endpoint": [T0, 3, {"id": 7, "name": "GPS Tracker", "tags": None}]},
    }
    folded = ds.loads(orjson.dumps(kept))
    assert ds.endpoint(folded) == {"id": 7, "name": "GPS Tracker"}
    after = ds.apply(folded, ev(2, 5, endpoint={"id": 7}))
    assert ds.endpoint(after) == {"id": 7, "name": "GPS Tracker"}
    assert ds.loads(ds.dumps(after)) == after


def test_an_older_event_does_not_move_the_status_back() -> None:
    online = fold([ev(1, 0, detail=VODAFONE), session(10)])
    backfilled = ds.apply(ds.apply(online, ev(5, 5)), ev(15, 6))  # before the session began
    assert ds.status(backfilled) == Status.ONLINE
    assert ds.location(backfilled) == ds.location(online)
    late_network = ds.apply(online, ev(1, 4, detail=ORANGE))
    location = ds.location(late_network)
    assert location is not None and location["operator"]["name"] == "Vodafone"


def test_connectivity_values() -> None:
    folded = fold([event for event, _ in STORY[:4]])
    location = ds.location(folded)
    assert location is not None
    assert location["operator"]["name"] == "Orange"
    assert location["country"] == ORANGE["country"]
    assert location["last_updated"] == format_ms(T0 + 3 * MIN)
    assert (location["vlr"], location["sgsn"]) == ("491720000095", "4917")
    pdp = ds.pdp_context(folded)
    assert pdp is not None
    assert (pdp["apn"], pdp["rat_type"], pdp["ue_ip_address"]) == ("em", 6, "100.64.0.7")
    assert pdp["tunnel_created"] == format_ms(T0 + 2 * MIN)
    assert "big" not in pdp  # only the known session fields are kept
    assert ds.services(folded) == ["GPRS", "SMS"]
    closed = ds.apply(folded, ev(5, 4))
    assert ds.pdp_context(closed) is None
    assert ds.services(fold([ev(2, 0)])) == ["GPRS"]
    assert ds.services(fold([ev(1, 0), ev(15, 1)])) == []


def test_a_rejected_session_changes_nothing() -> None:
    attached = fold([ev(1, 0, detail=VODAFONE)])
    rejected = ev(
        3,
        1,
        description="PDP Context Request rejected, because endpoint has no quota.",
        event_source={"id": 1},
        event_severity={"id": 1},
        alert=True,
    )
    after = ds.apply(attached, rejected)
    assert ds.status(after) == Status.ATTACHED
    assert after.times == attached.times
    warning = ev(3, 2, event_source={"id": 1}, event_severity={"id": 1})
    assert ds.status(ds.apply(attached, warning)) == Status.ATTACHED


def test_a_session_without_parameters_does_not_show_an_older_sessions() -> None:
    folded = fold([session(0), ev(5, 1), ev(4, 2)])  # Update PDP Context: a session again
    pdp = ds.pdp_context(folded)
    assert ds.status(folded) == Status.ONLINE
    assert pdp == {"tunnel_created": format_ms(T0 + 2 * MIN), "ue_ip_address": "10.0.0.7"}


def test_never_attached_is_offline_and_gprs_purge_keeps_sms() -> None:
    assert ds.status(fold([ev(10001, 0)])) == Status.OFFLINE
    both = fold([ev(1, 0), ev(2, 0), ev(16, 1)])
    assert ds.status(both) == Status.ATTACHED and ds.services(both) == ["SMS"]


@pytest.mark.parametrize(
    ("endpoint", "key"),
    [
        ({"id": 42, "name": "x"}, "42"),
        ({"name": "c0ffee-uuid"}, "c0ffee-uuid"),
        ({"name": "123"}, None),  # would read as an id
        ({"name": "x" * 257}, None),
        ({"id": True}, None),
        ({}, None),
        (None, None),
    ],
)
def test_endpoint_keys(endpoint: Any, key: str | None) -> None:
    assert ds.endpoint_key({"endpoint": endpoint}) == key


def test_stored_and_loaded_unchanged() -> None:
    folded = fold([event for event, _ in STORY])
    assert ds.loads(ds.dumps(folded)) == folded
    assert ds.loads(ds.dumps(folded).decode()) == folded


def test_unreadable_timestamps_are_no_events() -> None:
    assert ds.device_event(1, 1, orjson.dumps({"timestamp": "soon"})) is None
    assert ds.device_event(1, 1, orjson.dumps([1])) is None
    read = ds.device_event(1, 1, orjson.dumps({"timestamp": format_ms(T0)}))
    assert read is not None and read.timestamp_ms == T0


def test_sim_and_quota_states_newest_wins() -> None:
    folded = fold([ev(44, 0), ev(8, 1), ev(56, 2), ev(18, 3), ev(19, 4), ev(9, 5)])
    assert (ds.value(folded, "sim"), ds.value(folded, "quota")) == ("SUSPENDED", "EXHAUSTED")
    late = ds.apply(folded, ev(10, -1))  # an older deletion does not override the suspension
    assert ds.value(late, "sim") == "SUSPENDED"

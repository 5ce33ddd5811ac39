from __future__ import annotations

from typing import Any

import orjson
import pytest

from herald.catalog import load_catalog
from herald.events.codec import check
from herald.model import (
    NULL_WHEN_ABSENT,
    FieldError,
    NewEvent,
    OrganisationRef,
    build_event,
    served_record,
)
from herald.timefmt import parse_timestamp, to_ms

NOW = to_ms(parse_timestamp("2026-11-20T10:00:00Z"))
ORG = OrganisationRef(id=7, name="Acme IoT")


def build(body: dict[str, Any], internal: bool = True) -> NewEvent | list[FieldError]:
    checked = check(body)
    if isinstance(checked, list):
        return checked
    return build_event(
        checked,
        organisation=ORG,
        catalog=load_catalog(),
        received_ms=NOW,
        internal=internal,
    )


def built(body: dict[str, Any], internal: bool = True) -> NewEvent:
    result = build(body, internal)
    assert isinstance(result, NewEvent), result
    return result


def test_defaults_come_from_the_catalogue() -> None:
    event = built({"event_type": {"id": 19}, "endpoint": {"id": 5}})
    record = event.record
    assert record["event_type"] == {"id": 19, "description": "Quota used up"}
    assert record["timestamp"] == "2026-11-20T10:00:00.000Z"
    assert record["organisation"] == {"id": 7, "name": "Acme IoT"}
    assert record["description"] == "Quota used up"
    assert record["target"] == {"type": "endpoint", "id": "5"}
    assert record["internal"] is True
    default = load_catalog().get(19)
    assert default is not None
    assert (event.severity, event.source, event.alert) == (
        default.default_severity,
        default.default_source,
        bool(default.default_alert),
    )


def test_criticality_follows_severity_unless_given() -> None:
    assert built({"event_type": {"id": 10001}, "event_severity": {"id": 2}}).criticality == 1
    assert built({"event_type": {"id": 10001}, "event_severity": {"id": 0}}).criticality == 5
    assert built({"event_type": {"id": 10001}, "criticality": 2}).criticality == 2


def test_moniker_resolves_the_type_and_types_get_their_moniker() -> None:
    by_moniker = built({"moniker": "endpointdatasessioncreated_v1", "endpoint": {"id": 1}})
    assert by_moniker.type_id == 3
    assert built({"event_type": {"id": 5}}).record["moniker"] == "endpointdatasessiondeleted_v1"
    stacuity_only = built({"moniker": "vpnikephase1down_v1"})
    assert stacuity_only.type_id >= 1000
    assert stacuity_only.record["target"] is None  # no routing target named
    tunnel = {"type": "routing_target", "id": "vpn-7"}
    assert built({"moniker": "vpnikephase1down_v1", "target": tunnel}).record["target"] == tunnel


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": {"id": 999}}, "event_type.id"),
        ({}, "event_type"),
        ({"moniker": "nosuchthing_v1"}, "moniker"),
        ({"moniker": "endpointdatasessioncreated_v1", "event_type": {"id": 5}}, "moniker"),
        ({"event_type": {"id": 3}, "timestamp": "2026-11-20T11:00:00Z"}, "timestamp"),
        ({"event_type": {"id": 3}, "event_severity": {"id": 3}}, "event_severity.id"),
        ({"event_type": {"id": 3}, "event_source": {"id": 9}}, "event_source.id"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], field: str) -> None:
    result = build(body)
    assert isinstance(result, list)
    assert field in [error.field for error in result]


def test_tenants_write_any_code_and_only_the_platform_writes_internal_events() -> None:
    for code in (10042, 3, 5, 999):
        assert built({"event_type": {"id": code}}, internal=False).record["internal"] is False
    assert built({"event_type": {"id": 3}}).record["internal"] is True
    assert built({"event_type": {"id": 10042}}).record["internal"] is False  # a custom code
    assert built({"event_type": {"id": 3}}, internal=False).record["event_type"] == {
        "id": 3,
        "description": "Create PDP Context",
    }


@pytest.mark.parametrize("kind", ["device", "folder", "tenant", "user", "x", "a" + "b_9" * 10])
def test_target_types_are_an_open_set_of_short_lowercase_names(kind: str) -> None:
    target = {"type": kind, "id": "42"}
    assert built({"event_type": {"id": 10001}, "target": target}).record["target"] == target
    device = built({"event_type": {"id": 10001}, "target": {"type": "Device", "id": "1"}})
    assert device.record["target"] == {"type": "device", "id": "1"}


@pytest.mark.parametrize("kind", ["", "9lives", "has space", "a" * 33, "dé", "a-b"])
def test_other_target_types_are_refused(kind: str) -> None:
    refused = check({"event_type": {"id": 10001}, "target": {"type": kind, "id": "1"}})
    assert isinstance(refused, list) and refused[0].field == "target.type"


def test_criticality_0_or_null_is_not_applicable_and_absent_follows_severity() -> None:
    severe = {"event_type": {"id": 10001}, "event_severity": {"id": 2}}
    for given in (0, None):
        event = built({**severe, "criticality": given})
        assert event.criticality == 0
        assert event.record["criticality"] == {"id": 0, "description": "Not applicable"}
    assert built(severe).criticality == 1


def test_producer_objects_are_kept_as_sent() -> None:
    endpoint = {"id": 9, "name": "Tracker", "tags": None, "vendor": "acme"}
    record = built({"event_type": {"id": 1}, "endpoint": endpoint, "detail": {"a": [1]}}).record
    assert record["endpoint"] == endpoint
    assert record["detail"] == {"a": [1]}
    # absent nested objects are null, as emnify's and 1NCE's records list them (issue #34)
    assert record["sim"] is None and record["imsi"] is None and record["user"] is None


def test_absent_nested_objects_are_null_in_the_providers_order() -> None:
    record = built({"event_type": {"id": 1}}).record
    keys = list(record)
    at = keys.index("description")
    assert keys[at + 1 : at + 6] == list(NULL_WHEN_ABSENT)
    assert all(record[key] is None for key in NULL_WHEN_ABSENT)


def test_a_record_stored_without_null_keys_is_served_with_them() -> None:
    old = {"id": 5, "description": "Update location", "endpoint": {"id": 9}, "target": None}
    served = orjson.loads(served_record(orjson.dumps(old)))
    assert list(served) == [
        "id",
        "description",
        "endpoint",
        "sim",
        "imsi",
        "user",
        "detail",
        "target",
    ]
    assert served["endpoint"] == {"id": 9} and served["sim"] is None and served["detail"] is None
    # a nested "sim" key (the provider's original in payload.data) does not count as the record's
    nested = {"id": 6, "description": "x", "payload": {"data": {"sim": None, "user": None}}}
    assert orjson.loads(served_record(orjson.dumps(nested)))["sim"] is None


def test_a_complete_record_is_served_as_the_same_bytes() -> None:
    body = orjson.dumps({**built({"event_type": {"id": 1}}).record, "id": 1})
    assert served_record(body) is body


def test_external_id_is_kept_as_text() -> None:
    event = built({"id": 1234, "event_type": {"id": 1}})
    assert event.external_id == "1234" and event.record["external_id"] == "1234"


@pytest.mark.parametrize(
    ("name", "sent", "kept"),
    [
        ("endpoint", {"id": 5}, {"id": 5}),
        (
            "endpoint",
            {"tags": "a,b", "id": "17", "name": None, "zone": [1, {"b": None}]},
            {"id": 17, "name": None, "tags": "a,b", "zone": [1, {"b": None}]},
        ),
        (
            "endpoint",
            {"imei": "35", "ip_address": "10.0.0.1", "extra": {"deep": [True, 1.5]}},
            {"ip_address": "10.0.0.1", "imei": "35", "extra": {"deep": [True, 1.5]}},
        ),
        ("endpoint", {}, {}),
        (
            "sim",
            {"msisdn": "4917", "iccid": "8988", "id": 7, "status": {"id": 1}},
            {"id": 7, "iccid": "8988", "msisdn": "4917", "status": {"id": 1}},
        ),
        (
            "imsi",
            {"imsi": "2620", "import_date": "2026-11-30"},
            {"imsi": "2620", "import_date": "2026-11-30"},
        ),
        (
            "user",
            {"username": "ops", "id": 0, "name": "Ops", "role": None},
            {"id": 0, "name": "Ops", "username": "ops", "role": None},
        ),
    ],
)
def test_a_reference_is_kept_as_the_serialiser_would_write_it(
    name: str, sent: dict[str, Any], kept: dict[str, Any]
) -> None:
    """Its named fields that were sent, converted and in their declared order, then the
    others as sent."""
    record = built({"event_type": {"id": 1}, name: sent}).record
    assert list(record[name].items()) == list(kept.items())


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"endpoint": {"id": 1, "zone": "DEEP"}}, ("endpoint", "zone")),
        ({"sim": {"status": "DEEP"}}, ("sim", "status")),
        ({"streamer": "DEEP"}, ("streamer",)),  # an unknown top-level field
        ({"detail": "DEEP"}, ("detail",)),
    ],
)
def test_free_json_nesting_deeper_than_the_limit_is_refused_naming_the_field(
    sent: dict[str, Any], field: tuple[str, ...]
) -> None:
    deep: Any = 1
    for _ in range(33):
        deep = [deep]
    document = orjson.loads(orjson.dumps(sent).replace(b'"DEEP"', orjson.dumps(deep)))
    refused = check(document)
    assert isinstance(refused, list)
    [error] = refused
    assert error.field == ".".join(field) and "nests deeper than 32 levels" in error.reason
    shallow = orjson.loads(orjson.dumps(sent).replace(b'"DEEP"', orjson.dumps(deep[0])))
    assert not isinstance(check(shallow), list)  # 32 levels: kept

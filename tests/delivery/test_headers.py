"""A webhook's own headers, its timeout and receiver credentials, the Stacuity envelope and
the batch's byte ceiling (the HTTP side runs over a real server in tests/api/test_handlers)."""

from __future__ import annotations

import base64

import orjson
import pytest

from herald.delivery.batches import select
from herald.delivery.formats import MAX_BATCH_BODY_BYTES, Item, encode
from herald.delivery.headers import (
    HeaderError,
    authorization,
    check_headers,
    check_timeout,
    check_webhook_credentials,
)
from herald.events.types import LogEntry
from herald.handlers.types import HandlerSpec


def test_headers_are_kept_as_given_within_their_bounds() -> None:
    given = {"X-Tenant": "acme", "x-trace": "a b\tc", "Accept": "*/*"}
    assert check_headers(given) == given
    assert check_headers({}) == {}


@pytest.mark.parametrize(
    ("headers", "field", "reason"),
    [
        ({"HOST": "x"}, "settings.headers.HOST", "Herald or the HTTP connection"),
        ({"Keep-Alive": "5"}, "settings.headers.Keep-Alive", "Herald or the HTTP connection"),
        ({"Upgrade": "h2c"}, "settings.headers.Upgrade", "Herald or the HTTP connection"),
        ({"Authorization": "x"}, "settings.headers.Authorization", "credentials.token"),
        ({"Webhook-Id": "x"}, "settings.headers.Webhook-Id", "Herald or the HTTP connection"),
        ({"X-A": "a\nb"}, "settings.headers.X-A", "no CR, LF"),
        ({"X-A": "caf\u00e9"}, "settings.headers.X-A", "printable ASCII"),
        ({"X:A": "1"}, "settings.headers.X:A", "a token"),
        ({"X-A": 1}, "settings.headers.X-A", "a string"),
        ({f"X-{n}": "" for n in range(11)}, "settings.headers", "at most 10"),
        (["X-A"], "settings.headers", "an object"),
    ],
)
def test_bad_headers_name_the_header_and_why(headers: object, field: str, reason: str) -> None:
    with pytest.raises(HeaderError) as refused:
        check_headers(headers)
    assert refused.value.field == field and reason in refused.value.reason


def test_timeouts_are_bounded() -> None:
    assert check_timeout(5) == 5.0 and check_timeout(0.5) == 0.5 and check_timeout(60) == 60
    for bad in (0.49, 60.01, float("nan"), float("inf"), True, "5", None):
        with pytest.raises(HeaderError, match=r"settings\.timeout_seconds"):
            check_timeout(bad)


def test_credentials_make_one_authorization_header() -> None:
    assert authorization({"token": "abc"}) == "Bearer abc"
    basic = authorization({"username": "user", "password": "p:w"})
    assert basic == "Basic " + base64.b64encode(b"user:p:w").decode()
    assert authorization({}) is None
    assert check_webhook_credentials({"token": "abc"}) is None
    assert check_webhook_credentials({"username": "u", "password": "p"}) is None
    refusals = [
        check_webhook_credentials({"token": "t", "username": "u", "password": "p"}),
        check_webhook_credentials({"username": "u"}),
        check_webhook_credentials({"username": "a:b", "password": "p"}),
        check_webhook_credentials({"token": "t\r\nX-Injected: 1"}),
    ]
    fields = [refusal.partition(": ")[0] for refusal in refusals if refusal]
    assert fields == [
        "credentials.token",
        "credentials.password",
        "credentials.username",
        "credentials.token",
    ]


def _item(event_id: int, record: dict[str, object]) -> Item:
    return Item(event_id, event_id, orjson.dumps({"id": event_id, **record}))


def test_the_stacuity_envelope_names_the_scope_of_each_event() -> None:
    endpoint = _item(
        1,
        {
            "timestamp": "2026-12-01T10:00:00.000Z",
            "event_type": {"id": 2},
            "organisation": {"id": 7},
            "endpoint": {"id": 42},
            "target": {"type": "endpoint", "id": "42"},
            "moniker": "endpointlocationupdated_v1",
            "detail": {"mcc": "234"},
        },
    )
    routing = _item(
        2,
        {
            "timestamp": "2026-12-01T10:00:01.000Z",
            "event_type": {"id": 1010},
            "organisation": {"id": 7},
            "target": {"type": "routing_target", "id": "rt-9"},
            "moniker": "routingtargetavailable_v1",
            "detail": None,
        },
    )
    account = _item(
        3,
        {
            "timestamp": "2026-12-01T10:00:02.000Z",
            "event_type": {"id": 10001},
            "organisation": {"id": 7},
            "detail": [1, 2],
        },
    )
    content_type, body = encode("stacuity", [endpoint, routing, account], batch=True)
    assert content_type == "application/json"
    envelopes = orjson.loads(body)
    records = [envelope.pop("herald") for envelope in envelopes]
    assert [record["id"] for record in records] == [1, 2, 3]
    assert envelopes == [
        {
            "eventId": "1",
            "eventTime": "2026-12-01T10:00:00.000Z",
            "eventType": "endpointlocationupdated_v1",
            "accountId": "7",
            "endpointId": "42",
            "detail": {"mcc": "234"},
        },
        {
            "eventId": "2",
            "eventTime": "2026-12-01T10:00:01.000Z",
            "eventType": "routingtargetavailable_v1",
            "accountId": "7",
            "routingTargetId": "rt-9",
            "detail": {},
        },
        {
            "eventId": "3",
            "eventTime": "2026-12-01T10:00:02.000Z",
            "eventType": "herald.10001",
            "accountId": "7",
            "detail": {"value": [1, 2]},
        },
    ]
    _, single = encode("stacuity", [endpoint], batch=False)
    assert orjson.loads(single)["eventId"] == "1"  # one event: the envelope, no array


def test_a_batch_without_max_bytes_stops_at_the_body_ceiling() -> None:
    record = b'{"id":1,"pad":"' + b"x" * (1024 * 1024) + b'"}'  # about 1 MiB a record
    entries = [LogEntry(seq, 1, 10001, record, seq) for seq in range(1, 101)]
    spec = HandlerSpec(name="bulk", url="http://127.0.0.1:9/", batch_max_events=10_000)
    items, advance_to, full = select(entries, spec, None)
    assert full and len(items) == MAX_BATCH_BODY_BYTES // (len(record) + 1)
    assert advance_to == items[-1].seq  # the next batch starts with the first left out
    assert sum(len(item.body) + 1 for item in items) <= MAX_BATCH_BODY_BYTES
    small = [LogEntry(seq, 1, 10001, b'{"id":1}', seq) for seq in range(1, 10_002)]
    items, advance_to, full = select(small, spec, None)
    assert full and len(items) == 10_000 and advance_to == 10_000

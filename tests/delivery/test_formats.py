"""Every format passes the stored bytes through and writes byte for byte what receivers got
when each record was parsed and its envelope encoded with orjson (the oracle below, the
code before the pass-through)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.delivery.formats import CLOUDEVENTS_TYPE_PREFIX, STACUITY_SCOPES, Item, encode


def cloudevent_parsed(event_id: int, record: dict[str, Any], body: bytes) -> bytes:
    organisation = (record.get("organisation") or {}).get("id")
    kind = record.get("moniker") or (record.get("event_type") or {}).get("id")
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": f"/herald/organisations/{organisation}",
        "type": f"{CLOUDEVENTS_TYPE_PREFIX}{kind}",
        "time": record.get("timestamp"),
        "datacontenttype": "application/json",
    }
    target = record.get("target")
    if isinstance(target, dict) and target.get("type"):
        envelope["subject"] = f"{target['type']}/{target.get('id')}"
    envelope["data"] = orjson.Fragment(body)
    return orjson.dumps(envelope)


def stacuity_parsed(event_id: int, record: dict[str, Any], body: bytes) -> bytes:
    moniker = record.get("moniker")
    kind = moniker if moniker else f"herald.{(record.get('event_type') or {}).get('id')}"
    envelope: dict[str, Any] = {
        "eventId": str(event_id),
        "eventTime": record.get("timestamp"),
        "eventType": kind,
        "accountId": str((record.get("organisation") or {}).get("id")),
    }
    target = record.get("target")
    if not isinstance(target, dict):
        target = {}
    scope = target.get("type")
    if scope in STACUITY_SCOPES and target.get("id") is not None:
        envelope[STACUITY_SCOPES[scope]] = str(target["id"])
    endpoint = record.get("endpoint")
    if "endpointId" not in envelope and isinstance(endpoint, dict):
        if endpoint.get("id") is not None:
            envelope["endpointId"] = str(endpoint["id"])
    detail = record.get("detail")
    envelope["detail"] = (
        detail if isinstance(detail, dict) else {} if detail is None else {"value": detail}
    )
    envelope["herald"] = orjson.Fragment(body)
    return orjson.dumps(envelope)


def parsed(format: str, items: list[Item], batch: bool) -> bytes:
    """The body as it was made before: each record parsed, its envelope encoded."""
    bodies = [item.body for item in items]
    if format == "ndjson":
        return b"".join(body + b"\n" for body in bodies)
    make = {"cloudevents": cloudevent_parsed, "stacuity": stacuity_parsed}.get(format)
    if make is not None:
        bodies = [make(item.event_id, orjson.loads(item.body), item.body) for item in items]
    return b"[" + b",".join(bodies) + b"]" if batch else bodies[0]


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
REFERENCE = st.one_of(
    JSON,
    st.fixed_dictionaries({"id": st.one_of(st.integers(0, 10**12), st.text(max_size=8))}),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["endpoint", "routing_target", "sim", "", None]),
            "id": st.one_of(st.none(), st.integers(0, 10**9), st.text(max_size=8)),
        }
    ),
)
RECORDS = st.fixed_dictionaries(
    {"id": st.integers(1, 2**62)},
    optional=dict.fromkeys(
        ("organisation", "event_type", "target", "endpoint", "detail", "user"), REFERENCE
    )
    | {
        "moniker": st.one_of(st.none(), st.text(max_size=20)),
        "timestamp": st.one_of(st.none(), st.text(max_size=30), st.integers(0, 2**62)),
        "received": st.one_of(st.none(), st.text(max_size=30)),
        "description": st.text(max_size=40),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(RECORDS, min_size=1, max_size=4), st.booleans())
def test_every_format_is_byte_for_byte_the_parsed_one(
    records: list[dict[str, Any]], batch: bool
) -> None:
    items = [Item(n, record["id"], orjson.dumps(record)) for n, record in enumerate(records)]
    for format in ("native", "ndjson", "cloudevents", "stacuity"):
        body = encode(format, items, batch)[1]
        try:
            before = parsed(format, items, batch)
        except AttributeError:  # an organisation or type that is no object broke the step
            orjson.loads(body if format != "ndjson" else body.splitlines()[0])  # now: JSON
            continue
        assert body == before, format


def test_a_record_is_not_parsed_whole_for_an_envelope() -> None:
    """CloudEvents and Stacuity read the envelope's fields only: the record stays unparsed."""
    record = {
        "id": 7,
        "organisation": {"id": 2, "name": "Acme"},
        "event_type": {"id": 3, "description": "PDP context"},
        "moniker": "pdp.created",
        "timestamp": "2026-12-07T10:00:00.000Z",
        "target": {"type": "endpoint", "id": "11"},
        "detail": {"volume": {"rx": 1.5}},
        "endpoint": {"id": 11, "tags": "a,b"},
    }
    item = Item(1, 7, orjson.dumps(record))
    for format in ("cloudevents", "stacuity"):
        assert encode(format, [item], True)[1] == parsed(format, [item], True)
    assert item._record is None

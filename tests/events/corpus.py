"""The codec's test corpus: every record of the shared reference set as each path takes it,
hostile documents, generated ones, and the codec's outcome for each (``new_path``)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from herald.catalog import load_catalog
from herald.events import build, codec
from herald.ingest import PROVIDERS
from herald.ingest.types import resolve_provider_type
from herald.record import NewEvent
from herald.timefmt import parse_timestamp, to_ms
from tests.ingest.examples import emnify_examples, onece_examples, stacuity_examples

CATALOG = load_catalog()
NOW = to_ms(parse_timestamp("2026-11-20T10:00:00Z"))
ORG_ID = 7
Outcome = tuple[str, object]  # ("stored", (record bytes, columns)) or ("refused", fields)


def new_path(document: Any, internal: bool, provider: str, provider_type: str | None) -> Outcome:
    checked = codec.check(document)
    if isinstance(checked, list):
        return "refused", {e.field.split(".")[0] for e in checked}
    result = build.build_event(
        checked,
        organisation=codec.OrganisationRef(id=ORG_ID, name="Acme IoT"),
        catalog=CATALOG,
        received_ms=NOW,
        internal=internal,
        provider=provider,
        provider_type=provider_type,
        retention_days=30,
    )
    if isinstance(result, list):
        return "refused", {e.field.split(".")[0] for e in result}
    return "stored", (result.stored_body(1), columns(result))


def columns(event: NewEvent) -> tuple[object, ...]:
    """The indexed columns an event carries beside its record."""
    return (
        event.organisation_id,
        event.timestamp_ms,
        event.type_id,
        event.severity,
        event.source,
        event.alert,
        event.criticality,
        event.provider,
        event.external_id,
    )


Case = tuple[Any, bool, str, str | None]  # document, internal, provider, provider type


def _adapted(provider: str, record: dict[str, Any]) -> Case:
    """A provider record as its adapter hands it on."""
    document = PROVIDERS[provider](record)
    provider_type = resolve_provider_type(provider, document, CATALOG)
    document["organisation"] = {"id": ORG_ID}
    return document, True, provider, provider_type


def _recent(record: dict[str, Any], field: str = "timestamp") -> dict[str, Any]:
    """Dated on the test's day, so the retention window keeps it."""
    return {**record, field: "2026-11-19T08:00:00Z"} if field in record else record


def reference_cases() -> list[Case]:
    """Every record of the shared reference set, as each path takes it."""
    cases: list[Case] = []
    for example in emnify_examples(as_published=True):
        posted = {**_recent(example), "organisation": {"id": ORG_ID}}
        cases += [(posted, True, "api", None), (posted, False, "api", None)]
        cases.append(_adapted("emnify", _recent(example)))
    cases += [_adapted("1nce", _recent(record)) for _, record in onece_examples(as_published=True)]
    cases += [_adapted("stacuity", _recent(e, "eventTime")) for e in stacuity_examples()]
    return cases


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


HOSTILE: list[Any] = [
    {},
    [],
    "event",
    None,
    {"event_type": {"id": 3}, "detail": _deep(32)},
    {"event_type": {"id": 3}, "detail": _deep(33)},
    {"event_type": {"id": 3}, "endpoint": {"id": 1, "zone": _deep(32)}},
    {"event_type": {"id": 3}, "endpoint": {"id": 1, "zone": _deep(33)}},
    {"event_type": {"id": 3}, "streamer": _deep(33)},
    {"event_type": {"id": 3}, "payload": {"data": _deep(33)}},
    {"event_type": {"id": 3}, "endpoint": {"id": 2**63}},
    {"event_type": {"id": 3}, "endpoint": {"id": 2**63 - 1}},
    {"event_type": {"id": 2**31}},
    {"event_type": {"id": 2**100}},
    {"event_type": {"id": "3"}},
    {"event_type": {"id": 3.0}},
    {"event_type": {"id": False}},
    {"event_type": {"id": -1}},
    {"event_type": {"id": 3}, "organisation": {"id": 2**53 + 1}},
    {"event_type": {"id": 3}, "id": 2**80},
    {"event_type": {"id": 3}, "id": ""},
    {"event_type": {"id": 3}, "id": "x" * 129},
    {"event_type": {"id": 3}, "timestamp": "soon"},
    {"event_type": {"id": 3}, "timestamp": "2026-11-20T09:00:00+0100"},
    {"event_type": {"id": 3}, "timestamp": "2026-11-20T09:00:00.5+01:00"},
    {"event_type": {"id": 3}, "timestamp": "2026-11-20 09:00:00"},
    {"event_type": {"id": 3}, "timestamp": "2026-11-19T23:59:60.000Z"},
    {"event_type": {"id": 3}, "timestamp": "2026-02-30T10:00:00.000Z"},
    {"event_type": {"id": 3}, "timestamp": "1969-12-31T23:59:59.999Z"},
    {"event_type": {"id": 3}, "timestamp": "0001-01-01T00:00:00Z"},
    {"event_type": {"id": 3}, "timestamp": "9999-12-31T23:59:59.999Z"},
    {"event_type": {"id": 3}, "timestamp": "2026-11-19T\uff11\uff10:00:00.000Z"},
    {"event_type": {"id": 3}, "timestamp": 1795000000},
    {"event_type": {"id": 3}, "timestamp": 1795000000123},
    {"event_type": {"id": 3}, "timestamp": 1795000000.5},
    {"event_type": {"id": 3}, "timestamp": 10**30},
    {"event_type": {"id": 3}, "description": "nul \x00 inside"},
    {"event_type": {"id": 3}, "description": "d" * 4097},
    {"event_type": {"id": 3}, "provider": "spoofed", "received": "x", "internal": False},
    {"event_type": {"id": 3}, **{f"extra{i}": i for i in range(33)}},
    {"event_type": {"id": 3}, **{f"extra{i}": i for i in range(32)}},
    {"event_type": {"id": 3}, "tenant_id": ORG_ID, "target_entity_type": "Device"},
    {"event_type": {"id": 3}, "tenant_id": "8", "target_entity_type": "Device"},
    {
        "event_type": {"id": 10001},
        "tenant_id": str(ORG_ID),
        "target_entity_type": "Folder",
        "target_entity_id": 42,
    },
    {"event_type": {"id": 10001}, "target_entity_type": "9x", "target_entity_id": "1"},
    {"event_type": {"id": 10001}, "target_entity_type": "x", "target_entity_id": ""},
    {"event_type": {"id": 10001}, "target": {"type": "x"}, "target_entity_type": "device"},
    {"event_type": {"id": 10001}, "target": {"type": "Device", "id": "1"}},
    {"event_type": {"id": 10001}, "target": {"type": "device\n", "id": "1"}},
    {"event_type": {"id": 10001}, "target": {"type": "\u212a", "id": "1"}},  # Kelvin sign
    {"event_type": {"id": 10001}, "criticality": {"id": 3, "description": 7}},
    {"event_type": {"id": 10001}, "criticality": {"description": "High"}},
    {"event_type": {"id": 10001}, "criticality": None},
    {"event_type": {"id": 10001}, "criticality": "2"},
    {"event_type": {"id": 10001}, "alert": "true"},
    {"event_type": {"id": 10001}, "alert": 0},
    {"event_type": {"id": 10001}, "alert": "maybe"},
    {"moniker": "endpointdatasessioncreated_v1", "endpoint": {"id": 5, "name": None}},
    {"moniker": "endpointdatasessioncreated_v1", "event_type": {"id": 5}},
    {"moniker": "nosuchthing_v1"},
    {"event_type": {"id": 3}, "endpoint": {"tags": "a", "id": "17", "zone": [1, {"b": None}]}},
    {"event_type": {"id": 3}, "sim": {"status": {"id": 1}, "msisdn": "49"}, "user": None},
    {"event_type": {"id": 3}, "payload": {"content_type": "text/plain", "data": "x", "y": 1}},
    {"event_type": {"id": 3}, "payload": {}},
    {"event_type": {"id": 3}, "event_severity": {"id": 7}, "event_source": {"id": 9}},
]


_INT_LIKE = st.one_of(
    st.integers(min_value=-5, max_value=20_000),
    st.integers(min_value=2**31 - 2, max_value=2**31 + 1),
    st.integers(min_value=2**63 - 2, max_value=2**64 - 1),  # JSON as orjson reads it
    st.sampled_from(["3", "10001", "x", "", 3.5, 1e20, None]),
)
_TEXT = st.one_of(st.text(max_size=8), st.text(min_size=250, max_size=260), st.none())
_ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
_LEVEL = st.fixed_dictionaries({"id": _INT_LIKE}, optional={"description": _TEXT})
_REF = st.dictionaries(
    st.sampled_from(["id", "name", "imei", "iccid", "imsi", "username", "zone", "tags"]),
    st.one_of(_INT_LIKE, _TEXT, _ANY_JSON),
    max_size=4,
)
_TIMES = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(
        ["2026-11-20T09:59:00.123Z", "2026-11-20T09:59:00+0200", "2026-11-20", "later", ""]
    ),
    st.integers(min_value=0, max_value=2**40),
)
FIELDS = {
    "id": st.one_of(_INT_LIKE, _TEXT),
    "timestamp": _TIMES,
    "event_type": st.one_of(
        st.fixed_dictionaries({"id": st.sampled_from([1, 3, 5, 19, 999, 10001])}),
        _LEVEL,
        _INT_LIKE,
    ),
    "moniker": st.sampled_from(["endpointdatasessioncreated_v1", "vpnikephase1down_v1", "no"]),
    "event_severity": _LEVEL,
    "event_source": _LEVEL,
    "organisation": st.fixed_dictionaries({"id": _INT_LIKE}, optional={"name": _TEXT}),
    "alert": st.sampled_from([True, False, None, "true", "0", 1, "maybe", 2]),
    "description": _TEXT,
    "endpoint": st.one_of(_REF, st.none()),
    "sim": _REF,
    "imsi": _REF,
    "user": _REF,
    "detail": _ANY_JSON,
    "target": st.fixed_dictionaries(
        {"type": st.sampled_from(["device", "Folder", "9x", ""]), "id": _TEXT}
    ),
    "criticality": st.one_of(_INT_LIKE, _LEVEL),
    "payload": st.fixed_dictionaries({}, optional={"content_type": _TEXT, "data": _ANY_JSON}),
    "tenant_id": st.one_of(_INT_LIKE, _TEXT),
    "target_entity_type": st.sampled_from(["Device", "tenant", "9x", None]),
    "target_entity_id": st.one_of(_INT_LIKE, _TEXT),
    "streamer": _ANY_JSON,
    "internal": _ANY_JSON,
}
DOCUMENTS = st.fixed_dictionaries({}, optional=FIELDS)

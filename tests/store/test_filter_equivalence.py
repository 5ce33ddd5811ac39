"""The filter's SQL and its predicate select the same events, in the same order, on each backend.

Hypothesis generates events (built as the API builds them) and filters over every filter
field, with values drawn from the same small pools so that filters do match: mixed case,
LIKE wildcards, backslashes and non-ASCII letters in the text. Each example writes its events
for an organisation of its own, so the examples share one store.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.catalog import load_catalog
from herald.events.codec import Checked, check
from herald.events.types import EventQuery, SortKey
from herald.model import NewEvent, OrganisationRef, build_event
from herald.query.fields import BY_PUBLIC_NAME, Kind, Match
from herald.query.filter import EventFilter
from herald.store import Store
from herald.timefmt import format_ms, now_ms

NOW = now_ms()
TEXTS = ["fleet_a,eu", "Fleet_A", "fleet", "FLEET_B", "100%", "a_b", "back\\slash", "Émile", "é"]
TYPES = [3, 5, 19, 10001]
ORGANISATIONS = itertools.count(1000)

texts = st.sampled_from(TEXTS)
small_ints = st.integers(0, 3)


@st.composite
def event_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_type": {"id": draw(st.sampled_from(TYPES))},
        "timestamp": format_ms(NOW - draw(st.integers(0, 10)) * 60_000),
        "event_severity": {"id": draw(st.integers(0, 2))},
        "event_source": {"id": draw(st.integers(0, 2))},
        "alert": draw(st.booleans()),
        "criticality": draw(st.integers(0, 5)),
        "description": draw(texts),
    }
    if draw(st.booleans()):
        body["endpoint"] = {
            "id": draw(small_ints),
            "name": draw(texts),
            "tags": draw(texts),
            "imei": draw(texts),
            "ip_address": draw(st.sampled_from(["10.0.0.1", "10.0.0.2"])),
        }
    if draw(st.booleans()):
        body["sim"] = {"id": draw(small_ints), "iccid": draw(texts), "msisdn": draw(texts)}
    if draw(st.booleans()):
        body["user"] = {"id": draw(small_ints), "username": draw(texts)}
    if draw(st.booleans()):
        body["imsi"] = {"imsi": draw(texts)}
    if draw(st.booleans()):
        body["detail"] = {"name": draw(texts), "country": {"name": draw(texts)}}
        if draw(st.booleans()):
            body["detail"]["pdp_context"] = {"rat_type": draw(small_ints)}
    if draw(st.booleans()):  # emnify's organisation, or a Stacuity envelope's account
        data = (
            {"organisation": {"id": draw(small_ints)}}
            if draw(st.booleans())
            else {"accountId": draw(texts)}
        )
        body["payload"] = {"data": data}
    return body


def _values(kind: Kind, field_name: str) -> st.SearchStrategy[Any]:
    if field_name == "type":
        return st.sampled_from(TYPES)
    if kind is Kind.INT:
        return small_ints
    if kind is Kind.LEVEL:
        return st.integers(0, 5 if field_name == "criticality" else 2)
    if kind is Kind.BOOL:
        return st.booleans()
    if field_name == "provider":
        return st.sampled_from(["api", "emnify"])
    if field_name == "moniker":
        return st.sampled_from(["endpointdatasessioncreated_v1", "endpointdatasessiondeleted_v1"])
    if field_name == "target_type":
        return st.sampled_from(["endpoint", "organisation", "sim"])
    if field_name == "target_id":
        return st.sampled_from(["0", "1", "2"])
    if field_name == "ip_address":
        return st.sampled_from(["10.0.0.1", "10.0.0.2"])
    # a substring of the pool's texts, in any case, for the contains fields
    return texts | st.sampled_from(["fleet_a", "FLEET", "%", "_", "\\", "É", "é", "mile"])


FILTERABLE = sorted(
    {f.name: f for f in BY_PUBLIC_NAME.values() if f.name != "organisation"}.values(),
    key=lambda f: f.name,
)


@st.composite
def filters(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(FILTERABLE), max_size=3, unique_by=lambda f: f.name))
    terms: dict[str, tuple[Any, ...]] = {}
    for field in chosen:
        if field.match is Match.RANGE:
            continue
        size = 1 if field.kind is Kind.BOOL else draw(st.integers(1, 3))
        terms[field.name] = tuple(
            draw(st.lists(_values(field.kind, field.name), min_size=size, max_size=size))
        )
    from_ms = draw(st.none() | st.integers(NOW - 11 * 60_000, NOW))
    until_ms = draw(st.none() | st.integers(NOW - 11 * 60_000, NOW))
    return {"terms": terms, "from_ms": from_ms, "until_ms": until_ms}


def _build(organisation_id: int, body: dict[str, Any]) -> NewEvent:
    checked = check(body)
    assert isinstance(checked, Checked), checked
    built = build_event(
        checked,
        organisation=OrganisationRef(id=organisation_id, name="org"),
        catalog=load_catalog(),
        received_ms=NOW,
        internal=True,
    )
    assert isinstance(built, NewEvent), built
    return built


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bodies=st.lists(event_bodies(), min_size=1, max_size=12), wanted=filters())
def test_sql_and_predicate_select_the_same_events(
    store: Store, bodies: list[dict[str, Any]], wanted: dict[str, Any]
) -> None:
    organisation_id = next(ORGANISATIONS)
    events = [_build(organisation_id, body) for body in bodies]
    ids = [organisation_id * 1000 + index for index in range(len(events))]
    records = [orjson.loads(body) for body in store.log.append(events, ids)]
    flt = EventFilter((organisation_id,), **wanted)

    page = store.log.query(EventQuery(flt, sort=(SortKey("timestamp", True),), per_page=1000))
    selected = [record for record in records if flt.matches(record)]
    selected.sort(key=lambda record: (record["timestamp"], record["id"]), reverse=True)

    assert [orjson.loads(body)["id"] for body in page.items] == [r["id"] for r in selected]
    assert page.total == len(selected)

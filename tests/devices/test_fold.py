"""The fold over generated event sequences (hypothesis): the stored rows depend on neither
the order the events come in nor on how often, whether they were appended here or read
from the log, folded in one step or two. (Issue 33's cheaper fold was checked here to write
byte-identical rows and the same status changes as the fold before it, while both were in
the code: commit 8e860d7.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.devices import fold
from herald.devices import state as ds
from herald.events.types import LogEntry
from herald.model import NewEvent
from herald.timefmt import format_ms

T0 = 1_790_000_000_000
ORG = 3
_EMNIFY = (1, 2, 3, 3, 4, 5, 8, 9, 10, 11, 15, 16, 18, 19, 42, 43, 44, 45, 56, 57, 60)
TYPES = (*_EMNIFY, 1001, 1006, 1012, 1013, 1014, 1015, 1016, 1022, 2101, 10001)  # 2101: Herald's

_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=6),
    st.just("x" * 300),  # cut to MAX_TEXT
    st.sampled_from(("Telekom", "Orange", "12", "")),
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(0, 9), _text)
_endpoint = st.one_of(
    st.none(),
    st.just("not an object"),
    st.just({"name": "c0ffee-uuid"}),  # no id: the name is the key
    st.fixed_dictionaries(
        {"id": st.one_of(st.integers(1, 2), st.integers(1, 2), st.sampled_from((None, -1, True)))},
        optional={
            "name": st.one_of(st.sampled_from(("tracker", "meter", "7", None)), _scalar),
            "imei": _scalar,
            "ip_address": _scalar,
            "tags": st.one_of(_scalar, st.lists(_text, max_size=2)),
            "extra": _scalar,  # more fields than the state reads
            "more": _scalar,
        },
    ),
)
_country = st.fixed_dictionaries(
    {}, optional={"id": _scalar, "name": _text, "mcc": _scalar, "iso_code": _text, "x": _scalar}
)
_detail: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just([]),
    st.fixed_dictionaries(
        {},
        optional={
            "id": _scalar,
            "name": st.one_of(_text, st.integers(-10, 10**12)),
            "country": st.one_of(_country, _text),
            "mnc": st.one_of(st.lists(st.fixed_dictionaries({"mnc": _scalar}), max_size=2), _text),
            "pdp_context": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "apn": _text,
                        "rat_type": _scalar,
                        "ue_ip_address": _scalar,
                        "imsi": _scalar,
                        "big": st.just({"nested": [1]}),
                    },
                ),
                st.just([1, 2]),
            ),
            "volume": st.just({"total": 1.5}),
        },
    ),
)
_description = st.one_of(
    st.sampled_from(
        (
            "attached to VLR='491720000095'.",
            "attached to SGSN='4917', IP='1.2.3.4'.",
            "PDP Context Request REJECTED, because no quota.",
            "",
        )
    ),
    st.none(),
    _text,
)
_ref = st.one_of(st.none(), st.fixed_dictionaries({"id": st.sampled_from((0, 1, 2, "1"))}))


@st.composite
def _event(draw: st.DrawFn) -> tuple[int, int, int, dict[str, Any]]:
    """(event id, type, timestamp in ms, record): few endpoints, few distinct times (ties
    broken by the event id)."""
    type_id = draw(st.sampled_from(TYPES))
    ms = T0 + draw(st.integers(0, 12)) * 60_000
    record: dict[str, Any] = {
        "timestamp": format_ms(ms),
        "event_type": {"id": type_id},
        "endpoint": draw(_endpoint),
        "description": draw(_description),
        "event_source": draw(_ref),
        "event_severity": draw(_ref),
        "detail": draw(_detail),
    }
    return draw(st.integers(1, 10**6)), type_id, ms, record


_events = st.one_of(  # short sequences, and long ones: a block and what lifts it, a session...
    st.lists(_event(), max_size=8, unique_by=lambda event: event[0]),
    st.lists(_event(), min_size=10, max_size=40, unique_by=lambda event: event[0]),
)


def _entries(
    events: Sequence[tuple[int, int, int, dict[str, Any]]], from_log: Sequence[bool]
) -> tuple[list[LogEntry], dict[int, NewEvent]]:
    """The log's entries of ``events``, each either appended here (as built, no body) or
    read from the log (its stored bytes; some without the timestamp column)."""
    entries: list[LogEntry] = []
    built: dict[int, NewEvent] = {}
    for seq, ((event_id, type_id, ms, record), logged) in enumerate(
        zip(events, from_log, strict=True), 1
    ):
        if logged:
            at = None if event_id % 3 == 0 else ms
            entries.append(LogEntry(seq, ORG, type_id, orjson.dumps(record), event_id, at))
        else:
            entries.append(LogEntry(seq, ORG, type_id, b"", event_id, ms))
            built[event_id] = NewEvent(ORG, ms, ms, type_id, 0, 0, False, 5, "t", None, record)
    return entries, built


def _rows(
    chunks: Sequence[tuple[list[LogEntry], dict[int, NewEvent]]],
) -> tuple[dict[tuple[int, str], Any], list[tuple[Any, ...]]]:
    """Every row written and every status change, folding ``chunks`` one after the other
    as the projector does (each from the states the one before wrote)."""
    texts: dict[tuple[int, str], str] = {}
    rows: dict[tuple[int, str], Any] = {}
    changes: list[tuple[Any, ...]] = []
    for entries, built in chunks:
        events = fold.parse(entries, built)
        stored: Mapping[tuple[int, str], Any] = {
            key: ds.loads(texts[key]) if key in texts else None for key, _ in events
        }
        changed, found = fold.fold(stored, events, lambda at, event: event.event_id % 4 != 0)
        for (org, key), state in changed.items():
            row = fold.to_row(org, key, state, T0)
            rows[(org, key)] = row
            texts[(org, key)] = row.state
        changes += [
            (c.organisation_id, c.key, c.before, c.after, c.cause.event_id, c.endpoint)
            for c in found
        ]
    return rows, changes


@settings(max_examples=100, deadline=None)
@given(_events, st.randoms(use_true_random=False))
def test_the_stored_rows_depend_on_neither_order_nor_repeats(
    events: list[tuple[int, int, int, dict[str, Any]]], rng: Any
) -> None:
    once, _ = _rows([_entries(events, [False] * len(events))])
    again = events + rng.sample(events, len(events) // 2)
    rng.shuffle(again)
    half = len(again) // 2
    chunks = [
        _entries(again[:half], [rng.random() < 0.5 for _ in again[:half]]),
        _entries(again[half:], [rng.random() < 0.5 for _ in again[half:]]),
    ]
    shuffled, _ = _rows(chunks)
    assert shuffled == once


@given(
    st.dictionaries(
        st.sampled_from(
            (
                ds.CS_ATTACH,
                ds.PS_ATTACH,
                ds.DETACH,
                ds.PS_DETACH,
                ds.SESSION_OPEN,
                ds.SESSION_CLOSE,
                *(f"{kind}:{cause}" for kind in ("block", "clear") for cause in ds.BLOCK_CAUSES),
            )
        ),
        st.integers(1, 6),
    )
)
def test_the_status_in_one_pass_is_the_predicates(times: dict[str, int]) -> None:
    state = ds.DeviceState(0, times, {})
    if ds.blocked(state):
        expected = ds.Status.BLOCKED
    elif ds.session_open(state):
        expected = ds.Status.ONLINE
    else:
        expected = ds.Status.ATTACHED if any(ds.attached(state)) else ds.Status.OFFLINE
    assert ds.status_of(times) == ds.status(state) == expected

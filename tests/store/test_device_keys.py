"""Device keys (migration 0025): the SIM, ICCID, IMSI, user and target id of events naming
an endpoint are found through ``device_keys`` and the endpoint index, those of events naming
none through their own columns; rows written before 0025 are found all along, and on SQLite
``compact_records`` moves their keys to ``device_keys``, resumably."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from herald.events.types import EventQuery, SortKey
from herald.query.fields import DEVICE_KEYS
from herald.query.filter import EventFilter
from herald.store import Store, StoreError, open_store
from herald.store.records import RecordMethods
from herald.store.sql import KEY_COLUMNS
from herald.store.sqlite import SQLiteStore
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory

ORGANISATION = 7
OTHER = 8
EVENTS = 90

FILTERS: dict[str, dict[str, tuple[Any, ...]]] = {
    "sim": {"sim": (3,)},
    "sims": {"sim": (3, 4)},
    "iccid": {"iccid": ("8988000000000000003",)},
    "imsi": {"imsi": ("901430000000005",)},
    "user": {"user": (2,)},
    "target_id": {"target_id": ("endpoint-4",)},
    "target": {"target_type": ("user",), "target_id": ("2",)},
    "sim and imsi": {"sim": (3,), "imsi": ("901430000000003",)},
}


def _events(make_event: EventFactory, organisation_id: int) -> list[Any]:
    """Endpoints 100..104, each moving between SIMs (a SIM changes endpoint too); every
    third event names no endpoint: a user's or a SIM's event, found by its own columns."""
    start = now_ms() - 3_600_000
    made = []
    for i in range(EVENTS):
        sim = i % 7
        keys: dict[str, Any] = {
            "sim": {"id": sim, "iccid": f"898800000000000000{sim}"},
            "imsi": {"imsi": f"90143000000000{sim}"},
        }
        if i % 3 == 0:
            keys |= {"user": {"id": i % 4}, "target": {"type": "user", "id": str(i % 4)}}
            if i % 2:
                keys.pop("sim")
        else:
            endpoint = 100 + i % 5
            keys |= {
                "endpoint": {"id": endpoint, "name": f"device-{endpoint}"},
                "target": {"type": "endpoint", "id": f"endpoint-{i % 5}"},
            }
            if i % 4 == 1:
                keys["user"] = {"id": 2}
            if i % 5 == 2:
                keys.pop("imsi")  # an endpoint's event without the key its others carry
        made.append(make_event(organisation_id, start + i * 1000, type_id=(3, 5)[i % 2], **keys))
    return made


def _selections(store: Store) -> dict[str, list[bytes]]:
    newest_first = (SortKey("timestamp", True),)
    by_iccid = (SortKey("iccid", False), SortKey("timestamp", False))
    return {
        f"{name} {order}": store.log.query(
            EventQuery(EventFilter((ORGANISATION,), terms=terms), sort=sort, per_page=1000)
        ).items
        for name, terms in FILTERS.items()
        for order, sort in (("newest", newest_first), ("iccid", by_iccid))
    }


def _expected(store: Store) -> dict[str, int]:
    """How many events each filter selects, by the filter's predicate over every record."""
    everything = store.log.query(EventQuery(EventFilter((ORGANISATION,)), per_page=1000)).items
    return {
        name: sum(
            EventFilter((ORGANISATION,), terms=terms).matches(orjson.loads(body))
            for body in everything
        )
        for name, terms in FILTERS.items()
    }


def _paged(store: Store, terms: dict[str, tuple[Any, ...]], per_page: int) -> list[bytes]:
    """Every page of a filter, cursor after cursor."""
    pages: list[bytes] = []
    cursor: str | None = None
    while True:
        query = EventQuery(
            EventFilter((ORGANISATION,), terms=terms),
            sort=(SortKey("timestamp", True),),
            per_page=per_page,
            cursor=cursor,
        )
        page = store.log.query(query)
        pages += page.items
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_device_keys_select_what_the_records_say(
    store: Store, make_event: EventFactory, ids: Any
) -> None:
    """Each key filter, sort and cursor walk selects exactly the events whose records carry
    the key, with or without an endpoint, and none of another organisation's."""
    for organisation_id in (ORGANISATION, OTHER):
        store.organisations.create(f"org {organisation_id}", organisation_id)
        store.log.append(_events(make_event, organisation_id), ids(EVENTS))
    selected = _selections(store)
    expected = _expected(store)
    for name, count in expected.items():
        assert 0 < count < EVENTS, name
        assert len(selected[f"{name} newest"]) == count, name
        assert sorted(selected[f"{name} iccid"]) == sorted(selected[f"{name} newest"])
        assert _paged(store, FILTERS[name], 7) == selected[f"{name} newest"]
    counted = store.log.count(ORGANISATION, 0, EventFilter((ORGANISATION,), sim_ids=(3,)))
    assert counted == expected["sim"]


def _keyed_columns(store: RecordMethods[Any]) -> set[tuple[Any, ...]]:
    """The device-key columns of the events naming an endpoint."""
    sql = f"SELECT {', '.join(KEY_COLUMNS)} FROM events WHERE endpoint_id IS NOT NULL"
    return {tuple(row) for row in store.read(lambda c: c.execute(sql).fetchall())}


def _fill_key_columns(store: RecordMethods[Any]) -> None:
    """Every row's device-key columns filled and ``device_keys`` empty, as the release
    before 0025 left them."""
    with store.transaction() as conn:
        rows = conn.execute("SELECT id, dictionary_id, body FROM events").fetchall()
        assignments = ", ".join(f"{column} = ?" for column in KEY_COLUMNS)
        for event_id, dictionary_id, body in rows:
            record = orjson.loads(store.unpack(dictionary_id, bytes(body)))
            values = [field.value(record) for field in DEVICE_KEYS]
            conn.execute(f"UPDATE events SET {assignments} WHERE id = ?", (*values, event_id))
        conn.execute("DELETE FROM device_keys")


def test_sqlite_keeps_the_keys_of_endpoint_events_once_and_old_rows_move_theirs(
    tmp_path: Any, make_event: EventFactory, ids: Any
) -> None:
    """New rows naming an endpoint leave the key columns empty; rows written before 0025
    are found through their columns until ``compact_records``, killed after a chunk and run
    again, has moved their keys to ``device_keys``; the filters select the same all along."""
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        assert isinstance(store, RecordMethods)
        store.organisations.create("Acme", ORGANISATION)
        store.log.append(_events(make_event, ORGANISATION), ids(EVENTS))
        assert _keyed_columns(store) == {(None,) * len(KEY_COLUMNS)}
        selected = _selections(store)
        _fill_key_columns(store)
        assert _keyed_columns(store) != {(None,) * len(KEY_COLUMNS)}
        assert store.maintenance.uncompacted_events() == EVENTS * 2 // 3
        assert _selections(store) == selected

        def killed(done: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.maintenance.compact_records(killed, chunk=20)
        assert store.maintenance.uncompacted_events() == EVENTS * 2 // 3 - 20
        assert _selections(store) == selected
        assert store.maintenance.compact_records(chunk=20) == EVENTS * 2 // 3 - 20
        assert _keyed_columns(store) == {(None,) * len(KEY_COLUMNS)}
        assert _selections(store) == selected
    finally:
        store.close()


def test_sqlite_writes_a_key_again_after_the_transaction_that_wrote_it_rolled_back(
    tmp_path: Any, make_event: EventFactory, ids: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite remembers the device keys it wrote so that a batch writes only new ones; a
    transaction that fails after writing some must not leave them remembered (its rows are
    gone): the next event with those keys writes them, and the filters find it."""
    store = open_store(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        store.organisations.create("Acme", ORGANISATION)
        iccid = {"iccid": ("8988000000000000003",)}

        def event() -> Any:
            return make_event(
                ORGANISATION,
                endpoint={"id": 100},
                sim={"id": 3, "iccid": "8988000000000000003"},
            )

        assert isinstance(store, SQLiteStore)
        written = store._insert_new_device_keys

        def write_then_fail(conn: Any, rows: Any) -> None:
            written(conn, rows)
            raise StoreError("the disk failed after the keys")

        monkeypatch.setattr(store, "_insert_new_device_keys", write_then_fail)
        with pytest.raises(StoreError):
            store.log.append([event()], ids(1))
        monkeypatch.undo()
        store.log.append([event()], ids(1))
        found = store.log.query(EventQuery(EventFilter((ORGANISATION,), terms=iccid)))
        assert len(found.items) == 1
        store.log.append([event()], ids(1))  # its keys written: remembered, not written again
        found = store.log.query(EventQuery(EventFilter((ORGANISATION,), terms=iccid)))
        assert len(found.items) == 2
    finally:
        store.close()

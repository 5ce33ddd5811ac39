"""Records stored compressed (migration 0014), without second copies of the lean fields on
SQLite (0016): old rows migrate in place, resumably, losing nothing; a new dictionary never
breaks the rows of an older one."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.events.types import EventQuery, SortKey
from herald.model import served_record
from herald.query.filter import EventFilter
from herald.store import Store, open_store
from herald.store.migrator import migrations
from herald.store.records import RAW, SHIPPED_ID, RecordMethods
from herald.store.sql import EVENT_COLUMNS, LEAN_COLUMNS, event_row
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory
from tests.support.herald import HERALD
from tests.support.waiting import readable

ORGANISATION = 7
EVENTS = 120


def _events(make_event: EventFactory, count: int) -> list[Any]:
    start = now_ms() - 3_600_000
    return [
        make_event(
            ORGANISATION,
            start + i * 1000,
            type_id=(3, 5, 1)[i % 3],
            description=f"event {i} of a test fleet",
            endpoint={"id": 100 + i % 9, "name": f"device-{i % 9}", "imei": f"35{i:013d}"},
            detail={"country": {"name": ("Germany", "France")[i % 2]}, "volume": {"total": i}},
        )
        for i in range(count)
    ]


def _everything(store: Store) -> dict[str, Any]:
    """Every event as each reader serves it: list pages, one by one, and the log."""
    query = EventQuery(EventFilter((ORGANISATION,)), per_page=1000)
    listed = store.log.query(query).items
    ids = [orjson.loads(body)["id"] for body in listed]
    return {
        "listed": listed,
        "one_by_one": [store.log.get(event_id, (ORGANISATION,)) for event_id in ids],
        "log": [entry.body for entry in store.log.read(0, 10_000)],
    }


def _to_raw(store: Store) -> None:
    """Store every row uncompressed, as a release before 0014 wrote them."""
    assert isinstance(store, RecordMethods)
    with store.transaction() as conn:
        rows = conn.execute("SELECT id, ts, dictionary_id, body FROM events").fetchall()
        for event_id, ts, dictionary_id, body in rows:
            conn.execute(
                store.sql("UPDATE events SET body = ?, dictionary_id = 0 WHERE id = ? AND ts = ?"),
                (store.unpack(dictionary_id, body), event_id, ts),
            )


def test_old_rows_are_compressed_in_place_resumably_and_read_the_same(
    store: Store, make_event: EventFactory, ids: Any
) -> None:
    assert isinstance(store, RecordMethods)
    store.organisations.create("Acme", ORGANISATION)
    event_ids = ids(EVENTS)
    store.log.append(_events(make_event, EVENTS), event_ids)
    readable(store, event_ids)  # on PostgreSQL: once no older transaction is open (any DB)
    _to_raw(store)
    before = _everything(store)
    assert store.maintenance.uncompacted_events() == EVENTS

    def killed(done: int) -> None:
        raise KeyboardInterrupt  # the process dies after its first chunk

    with pytest.raises(KeyboardInterrupt):
        store.maintenance.compact_records(killed, chunk=50)
    assert store.maintenance.uncompacted_events() == EVENTS - 50
    assert _everything(store) == before  # half migrated, every reader serves the same
    assert store.maintenance.compact_records(chunk=50) == EVENTS - 50
    assert store.maintenance.uncompacted_events() == 0
    assert _everything(store) == before


def test_a_new_dictionary_never_breaks_older_rows(
    database_url: str, make_event: EventFactory, ids: Any
) -> None:
    first = open_store(database_url)
    try:
        assert isinstance(first, RecordMethods)
        first.organisations.create("Acme", ORGANISATION)
        first.log.append(_events(make_event, EVENTS), ids(EVENTS))
        dictionary_id, data = first.maintenance.train_dictionary(EVENTS)
        assert dictionary_id == SHIPPED_ID + 1 and len(data) > 0
    finally:
        first.close()
    second = open_store(database_url)  # a process started since: writes with the new one
    try:
        assert isinstance(second, RecordMethods)
        second.log.append(_events(make_event, 10), ids(10))
        used = second.read(
            lambda c: c.execute(
                "SELECT dictionary_id, COUNT(*) FROM events GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        assert [tuple(row) for row in used] == [(SHIPPED_ID, EVENTS), (dictionary_id, 10)]
        served = _everything(second)
        assert len(served["listed"]) == EVENTS + 10
        assert served["listed"] == served["one_by_one"]
    finally:
        second.close()


def test_herald_db_migrate_compresses_a_database_of_the_release_before(
    tmp_path: Path, make_event: EventFactory, ids: Any
) -> None:
    """A SQLite file as the release before 0014 wrote it: migrated by ``herald db migrate``
    (schema, then every record compressed), every event reads as it was written."""
    path = tmp_path / "old.db"
    events = _events(make_event, EVENTS)
    event_ids = ids(EVENTS)
    written = [orjson.dumps({**e.record, "id": i}) for e, i in zip(events, event_ids, strict=True)]
    # without dictionary_id (0014) and rat (0021)
    kept = [i for i, column in enumerate(EVENT_COLUMNS[:-1]) if column != "rat"]
    old_columns = [EVENT_COLUMNS[i] for i in kept]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_ms INTEGER NOT NULL)"
        )
        for migration in migrations("sqlite"):
            if migration.version < 14:
                conn.executescript(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                    (migration.version, migration.name),
                )
        conn.execute(
            "INSERT INTO organisations (id, name, created_ms) VALUES (?, 'Acme', 0)",
            (ORGANISATION,),
        )
        conn.executemany(
            f"INSERT INTO events ({', '.join(old_columns)}) "
            f"VALUES ({', '.join('?' * len(old_columns))})",
            [
                [event_row(event, event_id, body, RAW)[i] for i in kept]
                for event, event_id, body in zip(events, event_ids, written, strict=True)
            ],
        )
        conn.commit()
    url = f"sqlite:///{path}"
    result = subprocess.run(
        [*HERALD, "db", "migrate", "--database", url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"compacted {EVENTS:,} stored records" in result.stdout
    store = open_store(url)
    try:
        assert isinstance(store, RecordMethods)
        assert store.maintenance.uncompacted_events() == 0
        served = _everything(store)
        # as every read path serves a record of the release before: its null keys added
        expected = [served_record(body) for body in written]
        assert sorted(served["log"]) == sorted(expected)
        assert served["listed"] == served["one_by_one"] == expected[::-1]  # newest first
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        sizes = conn.execute("SELECT SUM(length(body)) FROM events").fetchone()[0]
        assert sizes < sum(map(len, written)) / 2


LEAN_FILTERS = {  # one filter per lean field, each selecting some of _events' events
    "imei": EventFilter(organisation_ids=(ORGANISATION,), imeis=("350000000000007",)),
    "description": EventFilter(organisation_ids=(ORGANISATION,), description=("EVENT 1",)),
}


def _lean_values(store: RecordMethods[Any]) -> list[tuple[Any, ...]]:
    columns = ", ".join(sorted(LEAN_COLUMNS))
    rows = store.read(lambda c: c.execute(f"SELECT {columns} FROM events").fetchall())
    return [tuple(row) for row in rows]


def _selections(store: Store) -> dict[str, list[bytes]]:
    return {
        name: store.log.query(EventQuery(flt, per_page=1000)).items
        for name, flt in LEAN_FILTERS.items()
    }


def test_sqlite_keeps_one_copy_of_the_lean_fields_and_old_rows_lose_theirs(
    tmp_path: Path, make_event: EventFactory, ids: Any
) -> None:
    """New rows leave the lean columns empty; rows written before 0016 are emptied by
    ``compact_records``, resumably; filters on those fields select the same events all along."""
    store = open_store(f"sqlite:///{tmp_path / 'lean.db'}")
    try:
        assert isinstance(store, RecordMethods)
        store.organisations.create("Acme", ORGANISATION)
        events = _events(make_event, EVENTS)
        store.log.append(events, ids(EVENTS))
        empty = ("",) + (None,) * (len(LEAN_COLUMNS) - 1)  # description first, NOT NULL
        assert set(_lean_values(store)) == {empty}
        selected = _selections(store)
        # event 7; events 1, 10..19, 100..119 (of 120)
        assert [len(items) for items in selected.values()] == [1, 31]
        with store.transaction() as conn:  # as the release before 0016 wrote them
            rows = conn.execute("SELECT id, dictionary_id, body FROM events").fetchall()
            for event_id, dictionary_id, body in rows:
                record = orjson.loads(store.unpack(dictionary_id, body))
                conn.execute(
                    "UPDATE events SET description = ?, imei = ? WHERE id = ?",
                    (record["description"], record["endpoint"]["imei"], event_id),
                )
        assert store.maintenance.uncompacted_events() == EVENTS
        assert _selections(store) == selected

        def killed(done: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            store.maintenance.compact_records(killed, chunk=50)
        assert store.maintenance.uncompacted_events() == EVENTS - 50
        assert _selections(store) == selected
        assert store.maintenance.compact_records(chunk=50) == EVENTS - 50
        assert set(_lean_values(store)) == {empty}
        assert _selections(store) == selected
    finally:
        store.close()


OLD_FIELD_FILTERS = {  # the fields 0021 / 0008 left empty in rows written before them
    "rat": EventFilter((ORGANISATION,), terms={"rat": (6,)}),
    "provider_organisation": EventFilter(
        (ORGANISATION,), terms={"provider_organisation": ("acct-7",)}
    ),
}


def _old_field_events(make_event: EventFactory, count: int) -> list[Any]:
    """PDP contexts (rat 6 or 8) and Stacuity envelopes (account acct-7 or acct-8)."""
    start = now_ms() - 3_600_000
    return [
        make_event(
            ORGANISATION, start + i * 1000, detail={"pdp_context": {"rat_type": (6, 8)[i % 4 // 2]}}
        )
        if i % 2 == 0
        else make_event(
            ORGANISATION,
            start + i * 1000,
            provider="stacuity",
            payload={"data": {"accountId": ("acct-7", "acct-8")[i % 4 // 2]}},
        )
        for i in range(count)
    ]


def _found(store: Store) -> dict[str, int]:
    return {
        name: len(store.log.query(EventQuery(flt, per_page=1000)).items)
        for name, flt in OLD_FIELD_FILTERS.items()
    }


def test_events_stored_before_rat_and_the_stacuity_account_are_found_after_the_backfill(
    store: Store, database_url: str, make_event: EventFactory, ids: Any
) -> None:
    """Compressed rows as a release before 0021 left them on PostgreSQL (no rat, no Stacuity
    account id in their columns): ``backfill_fields``, killed after its first chunk then
    finished by ``herald db backfill-fields``, makes both filters find them, as SQLite does
    (which reads them from the record and has nothing to backfill)."""
    assert isinstance(store, RecordMethods)
    store.organisations.create("Acme", ORGANISATION)
    event_ids = ids(EVENTS)
    store.log.append(_old_field_events(make_event, EVENTS), event_ids)
    readable(store, event_ids)
    expected = {"rat": EVENTS // 4, "provider_organisation": EVENTS // 4}
    assert _found(store) == expected
    postgres = not store._CLEARS_LEAN_COLUMNS
    if postgres:
        with store.transaction() as conn:  # as before 0021, once its UPDATE had run
            conn.execute("UPDATE events SET rat = NULL, provider_organisation = NULL")
            conn.execute("DELETE FROM meta WHERE key LIKE 'backfill_fields.%'")
            assert (
                conn.execute("SELECT COUNT(*) FROM events WHERE dictionary_id = 0").fetchone()[0]
                == 0
            )  # every row compressed: SQL alone could not read them
        assert _found(store) == {"rat": 0, "provider_organisation": 0}
    assert store.maintenance.unbackfilled_events() == (EVENTS if postgres else 0)

    def killed(done: int) -> None:
        raise KeyboardInterrupt  # the process dies after its first chunk

    if postgres:
        with pytest.raises(KeyboardInterrupt):
            store.maintenance.backfill_fields(killed, chunk=50)
        assert store.maintenance.unbackfilled_events() == EVENTS - 50
    result = subprocess.run(
        [*HERALD, "db", "backfill-fields", "--database", database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"backfilled {EVENTS - 50 if postgres else 0:,} stored events" in result.stdout
    assert store.maintenance.unbackfilled_events() == 0
    assert _found(store) == expected


def _fleet_events(make_event: EventFactory, count: int, dialect: str) -> list[Any]:
    """Events of a fleet whose records the shipped dictionary has never seen: each has a
    block of text of its own ``dialect``, repeated across its events."""
    start = now_ms() - 3_600_000
    return [
        make_event(
            ORGANISATION,
            start + i * 100,
            description=f"{dialect} {i % 50}",
            endpoint={"id": i % 40, "name": f"{dialect}-meter-{i % 40}"},
            detail={f"{dialect}_reading_{k}": f"{dialect}-{k}-{i % 7}" for k in range(8)},
        )
        for i in range(count)
    ]


def test_the_dictionary_is_retrained_on_the_stores_records_when_the_mix_changes(
    store: Store, make_event: EventFactory, ids: Any
) -> None:
    """The maintenance loop's ``maintain`` adds a dictionary trained on the newest records
    when it packs them better than the one in use (hourly at most, one process at a time);
    a mix it already packs well keeps it; rows of every dictionary read as written."""
    assert isinstance(store, RecordMethods)
    store.organisations.create("Acme", ORGANISATION)
    store.log.append(_fleet_events(make_event, 500, "pump"), ids(500))
    assert store.maintenance.retrain_dictionary() is None  # too few records yet
    store.log.append(_fleet_events(make_event, 1500, "pump"), ids(1500))
    store.maintenance.maintain()
    own = store._codec().newest
    assert own == SHIPPED_ID + 1
    store.maintenance.maintain()  # looked at within the hour: nothing
    assert store.maintenance.retrain_dictionary() is None  # the same mix: no better
    store.log.append(_fleet_events(make_event, 2000, "valve"), ids(2000))
    assert store.maintenance.retrain_dictionary() == own + 1
    store.log.append(_fleet_events(make_event, 10, "valve"), ids(10))
    used = store.read(
        lambda c: c.execute("SELECT dictionary_id, COUNT(*) FROM events GROUP BY 1 ORDER BY 1")
    )
    assert [tuple(row) for row in used.fetchall()] == [
        (SHIPPED_ID, 2000),
        (own, 2000),
        (own + 1, 10),
    ]
    assert store.log.count(ORGANISATION, 0) == 4010
    for descending in (False, True):  # the oldest rows (shipped), the newest (own + 1, own)
        flt = EventFilter((ORGANISATION,))
        query = EventQuery(flt, sort=(SortKey("timestamp", descending),), per_page=1000)
        listed = store.log.query(query).items
        assert [orjson.loads(body)["description"].split()[0] for body in listed[:1]] == [
            "valve" if descending else "pump"
        ]
        ids_listed = [orjson.loads(body)["id"] for body in listed]
        assert [store.log.get(event_id, None) for event_id in ids_listed] == listed

"""What only the PostgreSQL backend has: the safe watermark, partitions, node-id leases."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from herald.handlers.types import Handler, HandlerSpec
from herald.ids import MAX_SEQUENCE, SEQUENCE_BITS
from herald.store import Conflict, StoreUnavailable, open_store
from herald.store.migrator import migrations
from herald.store.postgres import (
    _APPEND,
    DAY_MS,
    PARTITIONS_AHEAD,
    PostgresStore,
    _partition_day,
    partition_name,
    stage,
)
from herald.store.records import RAW
from herald.store.sql import event_row
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory
from tests.support import postgres
from tests.support.waiting import readable, wait_until

pytestmark = pytest.mark.postgres
Ids = Callable[[int], list[int]]


@pytest.fixture
def pg_url(postgres_template: str) -> Iterator[str]:
    with postgres.throwaway_database(postgres_template) as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    try:
        yield store
    finally:
        store.close()


def test_readers_never_pass_an_open_transaction(
    pg: PostgresStore, pg_url: str, make_event: EventFactory, ids: Ids
) -> None:
    """A transaction that began first but commits last is still read, and in its place."""
    start = pg.log.last_seq()
    slow, fast = ids(2)
    event = make_event(1)
    event.record["id"] = slow
    row = event_row(event, slow, orjson.dumps(event.record), RAW)
    with psycopg.connect(pg_url) as writer:  # a transaction kept open
        stage(writer, [row])
        writer.execute(_APPEND)
        pg.log.append([make_event(1)], [fast])  # begins later, commits first
        assert pg.log.read(start, 10) == []  # fast is committed, but not final yet
        assert pg.log.last_seq() == start
        writer.commit()
    readable(pg, [slow, fast], start)  # once no other transaction of the server is older
    log = pg.log.read(start, 10)
    assert [orjson.loads(entry.body)["id"] for entry in log] == [slow, fast]


def test_a_claim_waits_for_its_own_handlers_bookkeeping_and_skips_others_claims(
    pg: PostgresStore, pg_url: str
) -> None:
    """A worker takes a handler missing from its claim as lost, so the claim renews a
    handler whose row the worker's own write has locked (record_delivery in flight) once
    that commits, rather than skipping it. A free handler that another worker is claiming
    (locked) is still skipped, not waited for."""
    pg.organisations.create("Acme", 2)
    spec = HandlerSpec(name="h", url="http://127.0.0.1:9/")
    own = pg.handlers.create(2, spec, "s")
    assert [h.id for h in pg.handlers.claim("w1", now_ms(), 30_000)] == [own.id]
    free = pg.handlers.create(2, spec, "s")
    claimed: list[Handler] = []

    def claim() -> None:
        claimed.extend(pg.handlers.claim("w1", now_ms(), 30_000))

    def claim_waits() -> bool:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE handlers SET lease%'"
            ).fetchone()
        return row is not None and row[0] > 0

    with psycopg.connect(pg_url) as bookkeeping, psycopg.connect(pg_url) as other_worker:
        bookkeeping.execute("UPDATE handlers SET failures = 0 WHERE id = %s", (own.id,))
        other_worker.execute("SELECT id FROM handlers WHERE id = %s FOR UPDATE", (free.id,))
        claiming = threading.Thread(target=claim)
        claiming.start()
        wait_until(lambda: not claiming.is_alive() or claim_waits(), 10)
        bookkeeping.commit()
        claiming.join(10)
        assert [h.id for h in claimed] == [own.id]
        assert claimed[0].lease_until_ms is not None and claimed[0].owner == "w1"
        other_worker.rollback()
    claimed_ids = [h.id for h in pg.handlers.claim("w1", now_ms(), 30_000)]
    assert claimed_ids == sorted([own.id, free.id])  # by id: random within a millisecond


def test_two_writers_in_one_millisecond_never_take_the_same_id(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new handler's (or quarantined record's) id is a free slot of its millisecond, free
    among the committed rows read: an advisory lock per table and millisecond makes a second
    writer wait for the first (issue 28 #6). Here both draws take the lowest free slot, each
    after waiting (up to 2 s) for the other: without the lock both took slot 0, one handler
    in each organisation, which the key (organisation_id, id) lets through."""
    a, b = pg.organisations.create("A").id, pg.organisations.create("B").id
    meet = threading.Barrier(2, timeout=2)

    def lowest(ms: int, taken: Iterable[int], count: int) -> list[int]:
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait()  # with the lock, the other writer waits for the commit instead
        used = {i & MAX_SEQUENCE for i in taken}
        free = [slot for slot in range(MAX_SEQUENCE + 1) if slot not in used]
        return [(ms << SEQUENCE_BITS) | slot for slot in free[:count]]

    monkeypatch.setattr("herald.store.common.draw_public_ids", lowest)
    monkeypatch.setattr("herald.store.handlers.now_ms", lambda: 1_796_000_000_000)
    spec = HandlerSpec(name="h", url="http://127.0.0.1:9/")
    made: list[Handler] = []
    writers = [
        threading.Thread(target=lambda org=org: made.append(pg.handlers.create(org, spec, "s")))
        for org in (a, b)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    assert len(made) == 2 and made[0].id != made[1].id
    assert {h.id & MAX_SEQUENCE for h in made} == {0, 1}


def _days(pg: PostgresStore) -> set[int]:
    return {
        day for name in pg.maintenance.partitions() if (day := _partition_day(name)) is not None
    }


def test_partitions_cover_the_longest_retention_window_ahead_of_time(
    pg: PostgresStore, make_event: EventFactory, ids: Ids
) -> None:
    today = now_ms() // DAY_MS
    assert _days(pg) == set(range(today - 30, today + PARTITIONS_AHEAD + 1))  # default 30
    org = pg.organisations.create("Long", retention_days=60).id  # its days, made now
    assert _days(pg) == set(range(today - 60, today + PARTITIONS_AHEAD + 1))
    pg.log.append([make_event(org, (today - 45) * DAY_MS + 5)], ids(1))
    assert pg.maintenance.purge() == 0
    pg.organisations.set_retention(org, 30)
    assert pg.maintenance.purge() == 1  # whole days, as every organisation's window has left them
    assert _days(pg) == set(range(today - 30, today + PARTITIONS_AHEAD + 1))


def test_a_write_never_creates_a_partition(
    pg: PostgresStore, make_event: EventFactory, ids: Ids
) -> None:
    """Issue 17 #1: a write with a timestamp outside the window is refused by the store
    itself (the write path refuses it before), and the table does not grow."""
    before = pg.maintenance.partitions()
    for day in (-45, -10_000, 1_000):
        at = (now_ms() // DAY_MS + day) * DAY_MS
        with pytest.raises(Conflict, match="outside the days this store keeps"):
            pg.log.append([make_event(1, at)], ids(1))
    assert pg.maintenance.partitions() == before
    pg.log.append([make_event(1)], ids(1))  # the store goes on


def test_partition_names_have_four_digit_years_and_old_names_are_read() -> None:
    """Issue 17 #2: ``strftime("%Y")`` named year 1's day ``events_p10101``."""
    for year in (1, 9, 10, 999, 1000, 2026, 9999):
        day = int(datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000) // DAY_MS
        assert partition_name(day) == f"events_p{year:04d}0101"
        assert _partition_day(partition_name(day)) == day
    year_one = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000) // DAY_MS
    assert _partition_day("events_p10101") == year_one  # as older versions named it
    assert _partition_day("events_default") is None
    assert _partition_day("events_p20261399") is None


def test_the_purge_drops_partitions_of_older_versions_and_skips_strange_ones(
    pg: PostgresStore, pg_url: str
) -> None:
    """A database that older versions let grow a year-1 partition (``events_p10101``, which
    stopped retention for good) is purged again; a partition no day names is left alone."""
    year_one = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE events_p10101 (LIKE events INCLUDING DEFAULTS)")
        conn.execute(
            "ALTER TABLE events ATTACH PARTITION events_p10101 "
            f"FOR VALUES FROM ({year_one}) TO ({year_one + DAY_MS})"
        )
        conn.execute("CREATE TABLE events_pstrange (LIKE events INCLUDING DEFAULTS)")
        conn.execute(
            "ALTER TABLE events ATTACH PARTITION events_pstrange "
            f"FOR VALUES FROM ({year_one + DAY_MS}) TO ({year_one + 2 * DAY_MS})"
        )
    pg.maintenance.purge()
    assert "events_p10101" not in pg.maintenance.partitions()
    assert "events_pstrange" in pg.maintenance.partitions()


def test_node_ids_are_leased_uniquely_and_released(pg: PostgresStore, pg_url: str) -> None:
    other = open_store(pg_url)
    assert isinstance(other, PostgresStore)
    first, second = pg.nodes.lease(), other.nodes.lease()
    assert first != second and pg.nodes.lease() == first
    other.close()  # releases its lease
    third = open_store(pg_url)
    assert isinstance(third, PostgresStore)
    try:
        assert third.nodes.lease() == second
    finally:
        third.close()


def test_expired_node_leases_are_reused(pg: PostgresStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO nodes SELECT n, 'dead', now() - interval '1 hour' "
            "FROM generate_series(0, 1023) AS n"
        )
    assert pg.nodes.lease() == 0


def test_all_node_ids_taken_is_a_clear_error(pg: PostgresStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO nodes SELECT n, 'alive', now() FROM generate_series(0, 1023) AS n"
        )
    with pytest.raises(StoreUnavailable, match="1024 node ids"):
        pg.nodes.lease()


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        PostgresStore("postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")


def test_a_read_only_database_refuses_writes_as_unavailable(
    pg: PostgresStore, pg_url: str, make_event: EventFactory, ids: Ids
) -> None:
    """A database turned read-only (a standby, a full-disk guard): writes are a 503 to the
    API, not a 500, reads go on, and a store cannot start on it without saying why."""
    name = pg_url.rsplit("/", 1)[-1]
    with psycopg.connect(postgres.database_url("postgres"), autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    pg._pool.check()  # the pool reconnects, now read-only
    with pytest.raises(StoreUnavailable, match="read-only"):
        pg.log.append([make_event(1)], ids(1))
    assert pg.organisations.all() == []
    with pytest.raises(StoreUnavailable, match="read-only"):
        open_store(pg_url)


PLATFORM_TABLES = {  # the platform's own: reference tables when sharded by organisation
    "meta",
    "organisations",
    "tokens",
    "nodes",
    "dictionaries",
    "device_projection",
    "rule_position",  # the rules evaluator's one position in the whole log
    "schema_migrations",
}


def test_every_key_of_a_tenants_table_names_the_organisation(pg_url: str) -> None:
    """So that a PostgreSQL-based distributed engine can shard by ``organisation_id``."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT t.relname, i.relname, array_agg(a.attname::text) "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey) "
            "WHERE x.indisunique AND t.relnamespace = current_schema()::regnamespace "
            "AND NOT t.relispartition GROUP BY 1, 2"
        ).fetchall()
    keys = {(table, index): set(columns) for table, index, columns in rows}
    tenants = {key: columns for key, columns in keys.items() if key[0] not in PLATFORM_TABLES}
    assert {table for table, _ in tenants} >= {
        "handlers",
        "deliveries",
        "replays",
        "rejected_records",
        "event_keys",
        "event_counts",
        "device_states",
        "usage_records",
        "usage_daily",
        "rules",
        "rule_groups",
    }
    assert {key for key, columns in tenants.items() if "organisation_id" not in columns} == set()


def test_0017_gives_old_attempts_and_replays_their_handlers_organisation() -> None:
    """A database of the release before 0017, with an attempt log and a replay, migrates."""
    name = postgres.create_database()
    url = postgres.database_url(name)
    try:
        with psycopg.connect(url) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
            )
            for migration in migrations("postgres"):
                if migration.version < 17:
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, 0)",
                        (migration.version, migration.name),
                    )
            conn.execute("INSERT INTO organisations (id, name, created_ms) VALUES (4, 'A', 0)")
            conn.execute(
                "INSERT INTO handlers (id, organisation_id, name, type, url, format, filter, "
                "batch_max_events, batch_max_wait_ms, retention_ms, enabled, secret, cursor_seq, "
                "created_ms, updated_ms) VALUES "
                "(9, 4, 'h', 'webhook', 'http://x/', 'native', '{}', 1, 0, 1, true, 's', 0, 0, 0)"
            )
            conn.execute(
                "INSERT INTO deliveries (handler_id, at_ms, kind, event_ids, outcome, latency_ms) "
                "VALUES (9, 1, 'live', '{1}', 'delivered', 3)"
            )
            conn.execute(
                "INSERT INTO replays (handler_id, from_ms, until_ms, cursor_seq, end_seq, "
                "created_ms) VALUES (9, 0, 1, 0, 5, 0)"
            )
        store = open_store(url)
        try:
            assert [d.event_ids for d in store.handlers.deliveries(9)] == [(1,)]
            assert [r.end_seq for r in store.handlers.pending_replays(9)] == [5]
            store.handlers.delete(9, (4,))  # its attempts and replays go with it
        finally:
            store.close()
        with psycopg.connect(url) as conn:
            left = conn.execute(
                "SELECT (SELECT COUNT(*) FROM deliveries), (SELECT COUNT(*) FROM replays)"
            ).fetchone()
        assert left == (0, 0)
    finally:
        postgres.drop_database(name)

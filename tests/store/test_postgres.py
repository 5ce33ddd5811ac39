"""What only the PostgreSQL backend has: the safe watermark, partitions, node-id leases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import orjson
import psycopg
import pytest

from herald.store import StoreUnavailable, open_store
from herald.store.base import Handler, HandlerSpec
from herald.store.postgres import _APPEND, DAY_MS, PostgresStore, partition_name
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
    start = pg.last_seq()
    slow, fast = ids(2)
    event = make_event(1)
    event.record["id"] = slow
    row = event_row(event, slow, orjson.dumps(event.record))
    with psycopg.connect(pg_url) as writer:  # a transaction kept open
        writer.execute(_APPEND, [[value] for value in row])
        pg.append([make_event(1)], [fast])  # begins later, commits first
        assert pg.read_log(start, 10) == []  # fast is committed, but not final yet
        assert pg.last_seq() == start
        writer.commit()
    readable(pg, [slow, fast], start)  # once no other transaction of the server is older
    log = pg.read_log(start, 10)
    assert [orjson.loads(entry.body)["id"] for entry in log] == [slow, fast]


def test_a_claim_waits_for_its_own_handlers_bookkeeping_and_skips_others_claims(
    pg: PostgresStore, pg_url: str
) -> None:
    """A worker takes a handler missing from its claim as lost, so the claim renews a
    handler whose row the worker's own write has locked (record_delivery in flight) once
    that commits, rather than skipping it. A free handler that another worker is claiming
    (locked) is still skipped, not waited for."""
    pg.create_organisation("Acme", 2)
    spec = HandlerSpec(name="h", url="http://127.0.0.1:9/")
    own = pg.create_handler(2, spec, "s")
    assert [h.id for h in pg.claim_handlers("w1", now_ms(), 30_000)] == [own.id]
    free = pg.create_handler(2, spec, "s")
    claimed: list[Handler] = []

    def claim() -> None:
        claimed.extend(pg.claim_handlers("w1", now_ms(), 30_000))

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
    assert [h.id for h in pg.claim_handlers("w1", now_ms(), 30_000)] == [own.id, free.id]


def test_partitions_are_created_ahead_and_on_demand_and_dropped(
    pg: PostgresStore, make_event: EventFactory, ids: Ids
) -> None:
    today = now_ms() // DAY_MS
    assert {partition_name(today + d) for d in range(8)} <= set(pg.partitions())
    pg.append([make_event(1, (today - 45) * DAY_MS + 5)], ids(1))
    assert partition_name(today - 45) in pg.partitions()
    assert pg.purge(now_ms() - 30 * DAY_MS) == 1
    assert partition_name(today - 45) not in pg.partitions()
    assert partition_name(today) in pg.partitions()


def test_an_append_survives_a_partition_dropped_by_another_process(
    pg: PostgresStore, pg_url: str, make_event: EventFactory, ids: Ids
) -> None:
    old = (now_ms() // DAY_MS - 40) * DAY_MS
    pg.append([make_event(1, old)], ids(1))
    other = open_store(pg_url)
    try:
        assert other.purge(now_ms() - 30 * DAY_MS) == 1
    finally:
        other.close()
    new = ids(1)
    pg.append([make_event(1, old)], new)  # its cache still names the dropped day
    assert pg.get_event(new[0], None) is not None


def test_node_ids_are_leased_uniquely_and_released(pg: PostgresStore, pg_url: str) -> None:
    other = open_store(pg_url)
    assert isinstance(other, PostgresStore)
    first, second = pg.lease_node_id(), other.lease_node_id()
    assert first != second and pg.lease_node_id() == first
    other.close()  # releases its lease
    third = open_store(pg_url)
    assert isinstance(third, PostgresStore)
    try:
        assert third.lease_node_id() == second
    finally:
        third.close()


def test_expired_node_leases_are_reused(pg: PostgresStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO nodes SELECT n, 'dead', now() - interval '1 hour' "
            "FROM generate_series(0, 1023) AS n"
        )
    assert pg.lease_node_id() == 0


def test_all_node_ids_taken_is_a_clear_error(pg: PostgresStore, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO nodes SELECT n, 'alive', now() FROM generate_series(0, 1023) AS n"
        )
    with pytest.raises(StoreUnavailable, match="1024 node ids"):
        pg.lease_node_id()


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
        pg.append([make_event(1)], ids(1))
    assert pg.list_organisations() == []
    with pytest.raises(StoreUnavailable, match="read-only"):
        open_store(pg_url)

"""The Store contract, written once and run against every backend (``[sqlite]``, ``[postgres]``)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace

import orjson
import psycopg
import pytest

from herald.events.types import EventQuery, SortKey, StatsQuery
from herald.handlers.types import Delivery, HandlerProgress, HandlerSpec
from herald.ids import EPOCH_MS, MAX_PUBLIC_ID, SEQUENCE_BITS, IdGenerator, next_public_id
from herald.query.filter import EventFilter
from herald.store import NotFound, Store, StoreUnavailable, open_store
from herald.store.sqlite import sqlite_path
from herald.timefmt import now_ms
from tests.store.conftest import EventFactory
from tests.support.waiting import readable

Ids = Callable[[int], list[int]]
DAY = 86_400_000


def ids_of(bodies: list[bytes]) -> list[int]:
    return [orjson.loads(body)["id"] for body in bodies]


def test_schema_is_current(store: Store) -> None:
    status = store.maintenance.schema_status()
    assert status.applied and not status.pending
    store.maintenance.migrate()  # idempotent
    assert store.maintenance.schema_status().applied == status.applied


def test_append_returns_records_with_their_ids(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    new = ids(3)
    bodies = store.log.append([make_event(1), make_event(1), make_event(2)], new)
    assert ids_of(bodies) == new
    assert store.log.get(new[0], None) == bodies[0]
    assert store.log.get(new[0], (1,)) == bodies[0]
    assert store.log.get(new[2], (1,)) is None  # another organisation's: absent
    assert store.log.get(123, None) is None


def test_producer_ids_make_appends_idempotent(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    first = store.log.append([make_event(1, external_id="a")], ids(1))
    again = store.log.append(
        [make_event(1, external_id="a"), make_event(1, external_id="b"), make_event(1)], ids(3)
    )
    assert again[0] == first[0]
    twice = store.log.append(
        [make_event(1, external_id="c"), make_event(1, external_id="c")], ids(2)
    )
    assert twice[0] == twice[1]
    other_org = store.log.append([make_event(2, external_id="a")], ids(1))
    other_provider = store.log.append([make_event(1, external_id="a", provider="emnify")], ids(1))
    assert other_org[0] != first[0] and other_provider[0] != first[0]
    assert store.log.query(EventQuery(EventFilter(organisation_ids=(1,)))).total == 5


def test_concurrent_duplicates_are_stored_once(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(6)

    def write(event_id: int) -> None:
        barrier.wait(10)
        results.extend(store.log.append([make_event(1, external_id="dup")], [event_id]))

    threads = [threading.Thread(target=write, args=(event_id,)) for event_id in ids(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 6 and len(set(results)) == 1
    assert store.log.query(EventQuery()).total == 1


def test_query_filters(store: Store, make_event: EventFactory, ids: Ids) -> None:
    now = now_ms()
    store.log.append(
        [
            make_event(1, now - 3000, type_id=3, endpoint={"id": 5, "name": "tracker-5"}),
            make_event(1, now - 2000, type_id=5, description="Delete PDP Context"),
            make_event(1, now - 1000, type_id=3, sim={"id": 7, "iccid": "898830"}),
            make_event(2, now - 1000, type_id=3),
        ],
        ids(4),
    )

    def count(**kwargs: object) -> int | None:
        flt = EventFilter(organisation_ids=(1,), **kwargs)  # type: ignore[arg-type]
        return store.log.query(EventQuery(flt)).total

    assert count() == 3
    assert count(type_ids=(3,)) == 2
    assert count(type_ids=(3, 5)) == 3
    assert count(endpoint_ids=(5,)) == 1
    assert count(endpoint_names=("tracker-5",)) == 1
    assert count(iccids=("898830",)) == 1
    assert count(from_ms=now - 2000) == 2
    assert count(from_ms=now - 2500, until_ms=now - 1500) == 1
    assert count(description="delete pdp") == 1  # substring, case-insensitive on both
    assert count(description="100%") == 0  # LIKE wildcards are literal
    assert store.log.query(EventQuery(EventFilter(organisation_ids=()))).total == 0
    assert store.log.query(EventQuery(EventFilter())).total == 4  # internal: every organisation


def test_sort_and_pages(store: Store, make_event: EventFactory, ids: Ids) -> None:
    now = now_ms()
    new = ids(5)
    store.log.append([make_event(1, now - (5 - i) * 1000) for i in range(5)], new)
    newest_first = store.log.query(EventQuery(per_page=2))
    assert ids_of(newest_first.items) == [new[4], new[3]] and newest_first.total == 5
    page3 = store.log.query(EventQuery(per_page=2, page=3))
    assert ids_of(page3.items) == [new[0]]
    oldest_first = store.log.query(EventQuery(sort=(SortKey("timestamp", False),), per_page=10))
    assert ids_of(oldest_first.items) == new


def test_cursor_paging_walks_everything_once(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    now = now_ms()
    new = ids(7)
    store.log.append([make_event(1, now - 5000 + (i // 2) * 1000) for i in range(7)], new)
    seen: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        page = store.log.query(EventQuery(per_page=3, cursor=cursor, count=False))
        seen += ids_of(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == new and len(seen) == 7
    assert seen == sorted(new, key=lambda i: (-(i - new[0]) // 2, -i))


def test_read_log_follows_commit_order(store: Store, make_event: EventFactory, ids: Ids) -> None:
    start = store.log.last_seq()
    first = ids(2)
    store.log.append([make_event(1), make_event(2)], first)
    second = ids(1)
    store.log.append([make_event(1, now_ms() - 5 * DAY)], second)  # older, committed later
    readable(store, first + second, start)
    log = store.log.read(start, 100)
    assert [orjson.loads(e.body)["id"] for e in log] == first + second
    assert [e.seq for e in log] == sorted(e.seq for e in log)
    assert [e.organisation_id for e in log] == [1, 2, 1]
    assert [e.organisation_id for e in store.log.read(start, 100, (2,))] == [2]
    assert store.log.read(log[0].seq, 1) == [log[1]]
    assert store.log.last_seq() == log[-1].seq
    assert store.log.read(store.log.last_seq(), 100) == []


def test_purge_deletes_what_is_older_than_retention(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    org = store.organisations.create("Acme", retention_days=60).id
    now = now_ms()
    old = ids(2)
    store.log.append(
        [make_event(org, now - 40 * DAY), make_event(org, now - 39 * DAY, external_id="x")], old
    )
    recent = ids(1)
    store.log.append([make_event(org, now - 1000)], recent)
    assert store.maintenance.purge(now) == 0  # within its 60 days
    store.organisations.set_retention(org, None)  # the default, 30 days
    assert store.maintenance.purge(now) == 2
    assert store.log.get(old[0], None) is None
    assert store.log.get(recent[0], None) is not None
    assert store.maintenance.purge(now) == 0
    # the producer's id of a purged event may be used again
    again = store.log.append([make_event(org, now - 1000, external_id="x")], ids(1))
    assert orjson.loads(again[0])["id"] != old[1]


def test_purge_keeps_each_organisation_for_its_own_retention(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    """Organisations of 2, 10 and the default 30 days: each event is kept for its own
    organisation's retention after its timestamp, not a day less."""
    short = store.organisations.create("Short", retention_days=2).id
    medium = store.organisations.create("Medium", retention_days=10).id
    default = store.organisations.create("Default").id
    now = now_ms()
    ages = (1, 3, 9, 11, 29)
    written = {(org, age): ids(1)[0] for org in (short, medium, default) for age in ages}
    store.log.append(
        [make_event(org, now - age * DAY) for (org, age) in written],
        list(written.values()),
    )
    store.log.append([make_event(default, now)], ids(1))  # the newest stays anyway (SQLite)
    assert store.maintenance.purge(now) == 4 + 2  # short: 3, 9, 11, 29; medium: 11, 29
    kept = {key for key, event_id in written.items() if store.log.get(event_id, None)}
    assert kept == {
        (short, 1),
        (medium, 1),
        (medium, 3),
        (medium, 9),
        *((default, age) for age in ages),
    }
    scoped = EventFilter(organisation_ids=(short,))
    assert [row.count for row in store.log.stats(StatsQuery(scoped))] == [1]  # counts follow


def test_purge_never_gives_a_log_position_twice(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    store.organisations.create("Acme", 1, retention_days=60)
    now = now_ms()
    recent, backfilled = ids(1), ids(1)
    store.log.append([make_event(1, now - 1000)], recent)
    store.log.append([make_event(1, now - 40 * DAY)], backfilled)  # old, yet the newest
    readable(store, recent + backfilled)
    cursor = store.log.last_seq()  # where a handler that delivered it stands
    store.organisations.set_retention(1, 30)
    store.maintenance.purge(now)
    fresh = ids(1)
    store.log.append([make_event(1, now)], fresh)
    readable(store, fresh, cursor)
    assert [entry.event_id for entry in store.log.read(cursor, 10)] == fresh


def test_organisations(store: Store) -> None:
    acme = store.organisations.create("Acme")
    chosen = store.organisations.create("Chosen", 40)
    after = store.organisations.create("After")
    assert chosen.id == 40 and after.id > 40 and acme.id < 40
    assert store.organisations.get(40) == chosen
    assert store.organisations.get(999) is None
    assert [o.name for o in store.organisations.all()] == ["Acme", "Chosen", "After"]


def test_tokens(store: Store) -> None:
    org = store.organisations.create("Acme")
    token = store.organisations.create_token(
        token_hash="h1",
        prefix="hr_ab",
        name="ci",
        organisation_id=org.id,
        permissions=["event:read"],
        internal=False,
    )
    admin = store.organisations.create_token(
        token_hash="h2",
        prefix="hr_cd",
        name="",
        organisation_id=None,
        permissions=[],
        internal=True,
    )
    assert (
        store.organisations.find_token("h1") == token
        and store.organisations.get_token(admin.id) == admin
    )
    assert (
        store.organisations.find_token("nope") is None
        and store.organisations.get_token(999) is None
    )
    both = sorted([token, admin], key=lambda t: t.id)  # by id: creation's millisecond
    assert store.organisations.tokens() == both and store.organisations.tokens(org.id) == [token]
    revoked = store.organisations.revoke_token(token.id)
    assert revoked.revoked_ms is not None
    assert store.organisations.revoke_token(token.id).revoked_ms == revoked.revoked_ms  # idempotent
    with pytest.raises(NotFound):
        store.organisations.revoke_token(999)
    assert store.organisations.count_tokens() == 2


def test_meta(store: Store) -> None:
    assert store.meta.get("k") is None
    assert store.meta.set_if_absent("k", "first") == "first"
    assert store.meta.set_if_absent("k", "second") == "first"
    assert store.meta.get("k") == "first"


def test_handler_leases_and_cursor(store: Store, make_event: EventFactory, ids: Ids) -> None:
    org = store.organisations.create("Acme")
    event_ids = ids(1)
    store.log.append([make_event(org.id)], event_ids)
    readable(store, event_ids)  # PostgreSQL: no older transaction holds the log back
    handler = store.handlers.create(org.id, HandlerSpec(name="h", url="http://127.0.0.1/"), "s")
    assert handler.cursor_seq == store.log.last_seq()  # from now on
    now = now_ms()
    assert store.handlers.claimable_ids("a", now) == [handler.id]
    assert [h.id for h in store.handlers.claim("a", now, 10_000)] == [handler.id]
    assert store.handlers.claim("b", now, 10_000) == []  # held by a
    assert store.handlers.claimable_ids("b", now) == []
    assert store.handlers.claimable_ids("a", now) == [handler.id]
    assert [h.id for h in store.handlers.claim("a", now + 1, 10_000)] == [handler.id]
    assert store.handlers.advance_cursor(handler.id, "b", handler.cursor_seq + 1, org.id) is None
    assert (
        store.handlers.advance_cursor(handler.id, "a", handler.cursor_seq + 1, org.id + 1) is None
    )
    advanced = store.handlers.advance_cursor(handler.id, "a", handler.cursor_seq + 1, org.id)
    assert advanced is not None and advanced.cursor_seq == handler.cursor_seq + 1
    delivery = Delivery(handler.id, org.id, now, "live", (1,), 200, "delivered", None, 3)
    assert store.handlers.record_delivery("b", delivery, HandlerProgress(cursor_seq=9)) is None
    progress = HandlerProgress(cursor_seq=handler.cursor_seq + 7, failures=2, last_error="x")
    written = store.handlers.record_delivery("a", delivery, progress)
    assert written is not None and written.spec == handler.spec and written.owner == "a"
    assert (written.cursor_seq, written.failures, written.last_error) == (
        handler.cursor_seq + 7,
        2,
        "x",
    )
    assert store.handlers.claimable_ids("b", now + 20_000) == [handler.id]  # a's lease expired
    # a dies: once its lease expires, b takes the handler over where a stopped
    taken = store.handlers.claim("b", now + 20_000, 10_000)
    assert [h.owner for h in taken] == ["b"] and taken[0].cursor_seq == handler.cursor_seq + 7
    assert store.handlers.deliveries(handler.id)[0].event_ids == (1,)
    store.handlers.release("b")
    assert store.handlers.get(handler.id) is not None
    assert store.handlers.get(handler.id, (org.id + 1,)) is None
    store.handlers.delete(handler.id, (org.id,))
    with pytest.raises(NotFound):
        store.handlers.delete(handler.id, None)


def test_a_handlers_spec_round_trips(store: Store) -> None:
    """Every field of the spec is stored and read back as written, on create and update."""
    org = store.organisations.create("Acme")
    spec = HandlerSpec(
        name="s3",
        url="http://127.0.0.1:9000",
        format="ndjson",
        filter="type:3",
        batch_max_events=500,
        batch_max_wait_ms=2000,
        batch_max_bytes=1 << 20,
        type="s3",
        settings='{"bucket": "b"}',
        credentials="fernet:sealed",
    )
    created = store.handlers.create(org.id, spec, "s")
    assert created.spec == spec
    assert store.handlers.get(created.id) == created
    unbounded = replace(spec, batch_max_bytes=None, batch_max_events=10)
    updated = store.handlers.update(created.id, (org.id,), unbounded)
    assert updated.spec == unbounded and store.handlers.get(created.id) == updated


def test_stats_by_bucket_and_group(store: Store, make_event: EventFactory, ids: Ids) -> None:
    hour = 3_600_000
    base = (now_ms() // hour - 2) * hour
    store.log.append(
        [
            make_event(1, base + 10, type_id=3),
            make_event(1, base + 20, type_id=3),
            make_event(1, base + hour + 5, type_id=5, detail={"volume": {"total": 1.5}}),
            make_event(2, base + 30, type_id=3),
        ],
        ids(4),
    )
    scoped = EventFilter(organisation_ids=(1,))
    by_hour = store.log.stats(StatsQuery(scoped, bucket_ms=hour))
    assert [(row.bucket_ms, row.count) for row in by_hour] == [(base, 2), (base + hour, 1)]
    by_type = store.log.stats(StatsQuery(scoped, group="type"))
    assert [(row.key, row.count) for row in by_type] == [(3, 2), (5, 1)]
    (total,) = store.log.stats(StatsQuery(scoped))
    assert total.count == 3 and total.volume_mb == 1.5


def test_handler_ids_tell_nothing_of_other_organisations(store: Store) -> None:
    """Issue 28 #6: handler ids were a counter shared by all organisations (A, B, A got 111,
    112, 113: A learnt that B made one). Each is now a random free slot of the millisecond
    it was made in: unique, below 2**53, and ordered by that millisecond only."""
    a, b = store.organisations.create("A").id, store.organisations.create("B").id
    spec = HandlerSpec(name="h", url="http://127.0.0.1/")
    made = [store.handlers.create(org, spec, "secret") for org in (a, b, a, b, a, a)]
    ids = [handler.id for handler in made]
    assert len(set(ids)) == 6 and all(0 < i <= MAX_PUBLIC_ID for i in ids)
    assert max(ids) - min(ids) > 5  # a counter: 6 ids in a row
    assert [(i >> SEQUENCE_BITS) + EPOCH_MS for i in ids] == [h.created_ms for h in made]
    assert [h.id for h in store.handlers.all((a,))] == sorted(ids[0::2] + ids[5:])  # A's
    assert store.handlers.get(ids[1], (a,)) is None and store.handlers.get(ids[1], (b,)) == made[1]


def _made_at(ids: list[int], before: int, after: int) -> bool:
    """Each id is of a millisecond (``herald.ids.public_id_ms``) within ``[before, after]``,
    or up to one later per id: a millisecond whose slots above the last id are used up lends
    the next one (``herald.ids.next_public_id``)."""
    return all(before <= (i >> SEQUENCE_BITS) + EPOCH_MS <= after + len(ids) for i in ids)


def test_attempt_log_and_replay_ids_tell_nothing_of_other_organisations(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    """Issue 28 #6: attempt-log and replay ids were counters shared by all organisations (A's
    attempts 1, 3, 5 told A that B's handler made one in between). Each is now its handler's
    next: a random slot of the millisecond it was written in, above the handler's last id,
    so the log stays in order (and pages by id) and the ids say when, nothing else."""
    a, b = store.organisations.create("A").id, store.organisations.create("B").id
    spec = HandlerSpec(name="h", url="http://127.0.0.1/")
    handlers = {
        a: store.handlers.create(a, spec, "s").id,
        b: store.handlers.create(b, spec, "s").id,
    }
    before = now_ms()
    for n in range(40):  # A, B, A, B, ...: test sends, recorded with no lease
        org = (a, b)[n % 2]
        attempt = Delivery(handlers[org], org, now_ms(), "test", (), 200, "delivered", None, n)
        assert store.handlers.record_delivery("api", attempt, None) is not None
    store.log.append([make_event(a), make_event(b)], ids(2))  # something to replay
    replays: dict[int, list[int]] = {a: [], b: []}
    for n in range(10):
        org = (a, b)[n % 2]
        replays[org].append(store.handlers.create_replay(handlers[org], 0, now_ms()).id)
    after = now_ms()

    log = store.handlers.deliveries(handlers[a], limit=1000)
    assert [d.latency_ms for d in log] == list(range(38, -1, -2))  # newest first
    log_ids = [d.id for d in reversed(log)]
    assert log_ids == sorted(set(log_ids)) and all(0 < i <= MAX_PUBLIC_ID for i in log_ids)
    assert _made_at(log_ids, before, after)  # a counter: 1, 3, 5, ...
    every = log_ids + [d.id for d in store.handlers.deliveries(handlers[b], limit=1000)]
    assert len(set(every)) == 40
    # pages by id, as GET .../delivery does with X-Next-Cursor
    first = store.handlers.deliveries(handlers[a], limit=7)
    rest = store.handlers.deliveries(handlers[a], before_id=first[-1].id, limit=1000)
    assert first + rest == log

    for org in (a, b):
        assert replays[org] == sorted(set(replays[org]))
        assert _made_at(replays[org], before, after)
        assert [r.id for r in store.handlers.pending_replays(handlers[org])] == replays[org]
    assert not set(replays[a]) & set(replays[b])


def test_a_handlers_next_id_taken_elsewhere_is_drawn_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lock and no read of other rows chooses an attempt's id: where another row (of the
    organisation's other handler) has the id drawn, the insert does nothing and the next
    draw, above it, is taken."""
    org = store.organisations.create("A").id
    spec = HandlerSpec(name="h", url="http://127.0.0.1/")
    first, second = (
        store.handlers.create(org, spec, "s").id,
        store.handlers.create(org, spec, "s").id,
    )
    attempt = Delivery(first, org, now_ms(), "test", (), 200, "delivered", None, 1)
    store.handlers.record_delivery("api", attempt, None)
    (taken,) = [d.id for d in store.handlers.deliveries(first)]
    draws: list[int | None] = []
    real = next_public_id

    def draw(ms: int, after: int | None = None) -> int:
        draws.append(after)
        return taken if len(draws) == 1 else real(ms, after)

    monkeypatch.setattr("herald.store.common.next_public_id", draw)
    store.handlers.record_delivery("api", replace(attempt, handler_id=second, latency_ms=2), None)
    assert draws == [None, taken]
    (again,) = store.handlers.deliveries(second)
    assert again.id > taken and again.latency_ms == 2
    assert [(d.id, d.latency_ms) for d in store.handlers.deliveries(first)] == [(taken, 1)]


def test_token_ids_tell_nothing_of_other_organisations(store: Store) -> None:
    """Issue 28 #6: token ids (a JWT's ``sub``, the audit events' token id) were a counter
    shared by all organisations; they are a random free slot of their creation millisecond."""
    a, b = store.organisations.create("A").id, store.organisations.create("B").id
    before = now_ms()
    made = [
        store.organisations.create_token(
            token_hash=f"h{n}",
            prefix="hr_ab",
            name=str(n),
            organisation_id=org,
            permissions=["event:read"],
            internal=False,
        )
        for n, org in enumerate((a, b, a, b, a, a))
    ]
    after = now_ms()
    ids = [token.id for token in made]
    assert len(set(ids)) == 6 and all(0 < i <= MAX_PUBLIC_ID for i in ids)
    assert _made_at(ids, before, after)  # a counter: 1, 2, 3, ...
    assert [(i >> SEQUENCE_BITS) + EPOCH_MS for i in ids] == [t.created_ms for t in made]
    assert store.organisations.tokens(a) == sorted(
        (made[0], made[2], made[4], made[5]), key=lambda t: t.id
    )
    assert all(store.organisations.get_token(token.id) == token for token in made)


def test_a_deleted_handlers_delivery_in_flight_writes_nothing_into_a_new_one(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    """Issue 17 #3: SQLite gave a deleted handler's id to the next handler, another
    tenant's, and the old handler's in-flight delivery then wrote into it (disabled it with
    A's error, moved its cursor, logged A's event). Ids are never given twice, and every
    bookkeeping write checks the handler's organisation too."""
    a, b = store.organisations.create("A").id, store.organisations.create("B").id
    spec = HandlerSpec(name="h", url="http://127.0.0.1/")
    store.log.append([make_event(a)], ids(1))
    old = store.handlers.create(a, spec, "secret-a")
    replay = store.handlers.create_replay(old.id, 0, now_ms())
    now = now_ms()
    assert [h.id for h in store.handlers.claim("w", now, 30_000)] == [old.id]
    # ... its request is in flight when A deletes the handler and B creates one
    store.handlers.delete(old.id, (a,))
    new = store.handlers.create(b, spec, "secret-b")
    assert new.id != old.id  # never the deleted handler's id
    store.log.append([make_event(b)], ids(1))
    new_replay = store.handlers.create_replay(new.id, 0, now_ms())
    assert [h.id for h in store.handlers.claim("w", now, 30_000)] == [new.id]
    before = store.handlers.get(new.id)

    failed = Delivery(old.id, a, now, "live", (1,), 500, "disabled", "boom", 3)
    disable = HandlerProgress(cursor_seq=0, failures=9, last_error="boom", disabled_reason="x")
    assert store.handlers.record_delivery("w", failed, disable, (replay.id, 99)) is None
    assert store.handlers.record_delivery("w", failed, None) is None  # a test delivery too
    assert store.handlers.advance_cursor(old.id, "w", 0, a) is None
    store.handlers.advance_replay(replay.id, 99, old.id, a)
    # Were an id ever given again, the organisation check alone keeps B's handler safe.
    assert store.handlers.record_delivery("w", replace(failed, handler_id=new.id), disable) is None
    assert store.handlers.advance_cursor(new.id, "w", 0, a) is None
    store.handlers.advance_replay(new_replay.id, 0, new.id, a)

    assert store.handlers.get(new.id) == before
    assert store.handlers.deliveries(new.id) == []
    assert store.handlers.pending_replays(new.id) == [new_replay]


def test_writers_lease_distinct_node_ids_and_their_ids_never_collide(
    store: Store, database_url: str, make_event: EventFactory
) -> None:
    """Issue 15: two generators without a lease fell back to the process id and gave the
    same ids. Every writer leases its node id from the store, on both backends."""
    other = open_store(database_url)
    try:
        first, second = store.nodes.lease(), other.nodes.lease()
        assert first != second and store.nodes.lease() == first
        generated: dict[int, list[int]] = {}

        def write(writer: Store, node_id: int) -> None:
            generator = IdGenerator(node_id)
            for _ in range(10):
                batch = generator.next_ids(200)
                writer.log.append([make_event(1) for _ in batch], batch)
                generated.setdefault(node_id, []).extend(batch)

        threads = [
            threading.Thread(target=write, args=pair) for pair in ((store, first), (other, second))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not set(generated[first]) & set(generated[second])
        page = store.log.query(EventQuery(EventFilter(organisation_ids=(1,)), per_page=1))
        assert page.total == 4000
    finally:
        other.close()
    with pytest.raises(StoreUnavailable, match=f"node id {first} is leased"):
        third = open_store(database_url)
        try:
            third.nodes.lease(first)
        finally:
            third.close()


def test_a_writer_that_lost_its_node_lease_stops_appending(
    store: Store, database_url: str, make_event: EventFactory, ids: Ids
) -> None:
    """Issue 17: a process that loses its node id lease stops writing and says so; once it
    holds the id again (nobody else does), it writes again."""
    node = store.nodes.lease()
    assert store.nodes.refusal() is None
    _raw(database_url, "UPDATE nodes SET holder = 'another process'")
    assert store.nodes.renew() is False
    refusal = store.nodes.refusal()
    assert refusal is not None and f"node id {node}: lease lost" in refusal
    with pytest.raises(StoreUnavailable, match="lease lost"):
        store.log.append([make_event(1)], ids(1))
    assert store.log.query(EventQuery()).total == 0
    _raw(database_url, "DELETE FROM nodes")  # the other process ended
    assert store.nodes.renew() is True
    assert store.nodes.refusal() is None
    store.log.append([make_event(1)], ids(1))


def _raw(database_url: str, sql: str) -> None:
    """Run ``sql`` on the database from outside the store, as another process would."""
    if database_url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as conn, conn:
            conn.execute(sql)
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            pg.execute(sql.encode())


def test_log_activity_counts_and_idle_cursors(
    store: Store, make_event: EventFactory, ids: Ids
) -> None:
    a = store.organisations.create("Acme")
    b = store.organisations.create("Bolt")
    start = store.log.last_seq()
    handlers = [
        store.handlers.create(b.id, HandlerSpec(name=f"h{n}", url="http://127.0.0.1/"), "s")
        for n in range(2)
    ]
    new = ids(4)
    store.log.append([make_event(a.id, type_id=3), make_event(a.id, type_id=5)], new[:2])
    store.log.append([make_event(b.id, type_id=3), make_event(a.id, type_id=3)], new[2:])
    readable(store, new, start)
    end = store.log.last_seq()
    assert store.log.activity(start, end, 10) == {a.id: {3, 5}, b.id: {3}}
    assert store.log.activity(start, end, 3) is None  # more events than it may look at
    assert store.log.activity(end, end, 10) == {}

    # the filter counts: the organisation's events after the cursor that it selects
    assert store.log.count(a.id, start) == 3
    assert store.log.count(a.id, start, EventFilter(type_ids=(3,))) == 2
    assert store.log.count(a.id, start, EventFilter(type_ids=(3,)), limit=1) == 1
    first = store.log.first(a.id, start, EventFilter(type_ids=(5,)))
    assert first is not None and ids_of([first]) == [new[1]]
    assert store.log.first(b.id, end) is None

    now = now_ms()
    store.handlers.claim("w", now, 10_000)
    store.handlers.advance_cursors("other", [h.id for h in handlers], end)  # not its lease: nothing
    assert {store.handlers.get(h.id).cursor_seq for h in handlers} == {start}  # type: ignore[union-attr]
    store.handlers.advance_cursors("w", [handlers[0].id], end)
    store.handlers.advance_cursors("w", [handlers[0].id], start)  # never back
    cursors = [store.handlers.get(h.id).cursor_seq for h in handlers]  # type: ignore[union-attr]
    assert cursors == [end, start]

"""The worker driven step by step over a real store (each backend) and a real receiver."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import threading
import time
from typing import Any

import orjson
import pytest

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.recorder import HANDLER_DISABLED_TYPE, MAX_UNSETTLED
from herald.delivery.retry import RetryPolicy
from herald.delivery.signing import new_secret
from herald.delivery.worker import DeliveryWorker
from herald.events.types import EventQuery, SortKey
from herald.handlers.filters import handler_filter
from herald.handlers.types import Delivery, Handler, HandlerSpec
from herald.ids import IdGenerator
from herald.model import EventIn, NewEvent, OrganisationRef, TypeRef, build_event
from herald.store import Store, StoreUnavailable
from herald.timefmt import now_ms
from tests.delivery.receiver import Received, event_ids, receiving
from tests.support.waiting import readable, wait_until

SETTINGS = Settings(
    allow_private_targets=True, delivery_retry_schedule="0", delivery_lease_seconds=30
)


IDS = IdGenerator(1)  # one generator: two appends in the same millisecond get distinct ids


def append(store: Store, count: int, organisation_id: int = 2) -> list[int]:
    """Append ``count`` events and wait until the log's readers see them (``readable``)."""
    start = store.log.last_seq()
    ids = IDS.next_ids(count)
    events = []
    for _ in range(count):
        event = build_event(
            EventIn(event_type=TypeRef(id=10001)),
            organisation=OrganisationRef(id=organisation_id, name="Acme"),
            catalog=load_catalog(),
            received_ms=now_ms(),
            internal=True,
        )
        assert not isinstance(event, list)
        events.append(event)
    store.log.append(events, ids)
    readable(store, ids, start)
    return ids


def worker(store: Store) -> DeliveryWorker:
    return DeliveryWorker(store, SETTINGS, load_catalog(), IdGenerator(2))


def test_failing_past_retention_disables_records_an_event_and_resumes(store: Store) -> None:
    up = {"yes": False}

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        return (200 if up["yes"] else 500), {}

    with receiving(answer) as receiver:
        spec = HandlerSpec(name="h", url=receiver.url, retention_ms=1)
        handler = store.handlers.create(2, spec, new_secret())
        store.handlers.create(2, HandlerSpec(name="w", url=receiver.url + "/w"), new_secret())
        ids = append(store, 3)

        async def scenario() -> None:
            delivery = worker(store)
            try:
                for _ in range(20):  # fail until past the (1 ms) retention
                    await delivery.run_once()
                    current = store.handlers.get(handler.id)
                    if current is not None and not current.spec.enabled:
                        break
                wait_until(lambda: bool(disabled_notices(store)), 10)  # see ``readable``
                up["yes"] = True
                store.handlers.update(handler.id, (2,), spec)  # enabled again
                for _ in range(20):  # one batch per handler per pass
                    if {r.kind for r in await delivery.run_once()} == {"idle"}:
                        break
            finally:
                await delivery.aclose()

        asyncio.run(scenario())
        notices = disabled_notices(store)
        assert len(notices) == 1
        assert notices[0]["detail"]["event_handler"]["id"] == handler.id
        assert "retention" in notices[0]["description"]
        attempts = store.handlers.deliveries(handler.id)
        assert "disabled" in [a.outcome for a in attempts]
        resumed = store.handlers.get(handler.id)
        assert resumed is not None and resumed.spec.enabled and resumed.failures == 0
        own = [r for r in receiver.delivered() if r.path == "/hook"]
        delivered = [orjson.loads(r.body)["id"] for r in own]
        assert delivered[:3] == ids  # resumed exactly where it stopped
        assert delivered[3] == notices[0]["id"]
        watched = [orjson.loads(r.body)["id"] for r in receiver.delivered() if r.path == "/hook/w"]
        assert watched == [*ids, notices[0]["id"]]  # the tenant's other handler hears of it


def disabled_notices(store: Store) -> list[dict[str, Any]]:
    log = store.log.read(0, 100, (2,))
    return [orjson.loads(e.body) for e in log if e.type_id == HANDLER_DISABLED_TYPE]


def test_only_one_worker_holds_a_handler(store: Store) -> None:
    store.handlers.create(2, HandlerSpec(name="h", url="http://127.0.0.1:9/"), new_secret())

    async def scenario() -> None:
        first, second = worker(store), worker(store)
        try:
            assert len(await first.leases.claim()) == 1
            assert await second.leases.claim() == []
            store.handlers.release(first.owner)
            assert len(await second.leases.claim()) == 1
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(scenario())


def test_the_filter_selects_in_the_log_read_as_the_event_list_does(store: Store) -> None:
    """A handler's filter is applied by the log read's query (a column and, on SQLite, a
    field read from the record): the handler gets what the same q lists, in log order, and
    its cursor passes the rest."""
    q = "type:10001,description:alpha"
    descriptions = ["alpha one", "beta", "ALPHA two", "gamma", "alpha three", "beta alpha"]
    with receiving() as receiver:
        spec = HandlerSpec(name="h", url=receiver.url, filter=q, batch_max_events=2)
        handler = store.handlers.create(2, spec, new_secret())
        ids = IDS.next_ids(len(descriptions))
        start = store.log.last_seq()
        store.log.append([described(text) for text in descriptions], ids)
        readable(store, ids, start)
        scoped = handler_filter(q).replace(organisation_ids=(2,))
        page = store.log.query(EventQuery(filter=scoped, sort=(SortKey("id", False),)))
        listed = [orjson.loads(record)["id"] for record in page.items]
        assert listed == [ids[0], ids[2], ids[4], ids[5]]

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                await delivery.leases.claim()
                return [(await delivery.step(handler.id)).kind for _ in range(3)]
            finally:
                await delivery.aclose()

        assert asyncio.run(scenario()) == ["delivered", "delivered", "idle"]
        assert receiver.delivered_ids() == listed
        stored = store.handlers.get(handler.id)
        assert stored is not None and stored.cursor_seq == store.log.last_seq()


def described(description: str) -> NewEvent:
    event = build_event(
        EventIn(event_type=TypeRef(id=10001), description=description),
        organisation=OrganisationRef(id=2, name="Acme"),
        catalog=load_catalog(),
        received_ms=now_ms(),
        internal=True,
    )
    assert not isinstance(event, list)
    return event


def test_a_quiet_tenants_handler_moves_past_other_tenants_events(store: Store) -> None:
    store.organisations.create("Other", 3)
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        append(store, 5, organisation_id=3)
        end = store.log.last_seq()

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                [claimed] = await delivery.leases.claim()
                delivery.watcher.end = end  # as run()'s watch saw the log before the step
                kinds: list[str] = [(await delivery.step(handler.id, claimed)).kind]
                passed = store.handlers.get(handler.id)
                assert passed is not None and passed.cursor_seq == end
                mine = append(store, 2)
                kinds += [(await delivery.step(handler.id)).kind for _ in range(2)]
                assert [orjson.loads(r.body)["id"] for r in receiver.delivered()] == mine
                return kinds
            finally:
                await delivery.aclose()

        assert asyncio.run(scenario()) == ["idle", "delivered", "delivered"]


def test_events_sent_one_per_request_come_from_one_log_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    scan_log = store.log.scan

    def counted(after_seq: int, *args: object, **kwargs: object) -> object:
        reads.append(after_seq)
        return scan_log(after_seq, *args, **kwargs)  # type: ignore[arg-type]

    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 10)
        monkeypatch.setattr(store.log, "scan", counted)

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                [state] = await delivery.leases.claim()
                kinds: list[str] = []
                for _ in ids:
                    result = await delivery.step(handler.id, state)
                    assert result.handler is not None
                    kinds.append(result.kind)
                    state = result.handler
                return kinds
            finally:
                await delivery.aclose()

        assert asyncio.run(scenario()) == ["delivered"] * len(ids)
        assert [orjson.loads(r.body)["id"] for r in receiver.delivered()] == ids
    # the first read brought all ten; the second is the read-ahead of the last send
    assert reads == [0, store.log.last_seq()]


def attempts(store: Store, handler_id: int) -> list[Delivery]:
    """The handler's attempt log, oldest first."""
    return list(reversed(store.handlers.deliveries(handler_id)))


def outcome(attempt: Delivery) -> tuple[str, int | None, tuple[int, ...]]:
    return attempt.outcome, attempt.status, attempt.event_ids


async def run_until_recorded(
    delivery: DeliveryWorker, store: Store, handler_id: int, count: int
) -> None:
    """Run the worker's loop until the handler's attempt log holds ``count`` attempts."""
    running = asyncio.create_task(delivery.run())
    try:
        await asyncio.to_thread(wait_until, lambda: len(attempts(store, handler_id)) >= count, 20)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await delivery.aclose()


def test_a_step_returns_once_its_attempt_is_recorded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([500, 200])
    real_record = store.handlers.record_delivery

    def slow_record(*args: Any) -> Any:
        time.sleep(0.2)  # a slow commit: a step that did not wait for it would return first
        return real_record(*args)

    monkeypatch.setattr(store.handlers, "record_delivery", slow_record)
    with receiving(lambda _: (next(answers), {})) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        [event_id] = append(store, 1)

        async def scenario() -> None:
            delivery = worker(store)
            try:
                [claimed] = await delivery.leases.claim()
                failed = await delivery.step(handler.id, claimed)
                # Read at once, no waiting: the attempt is in the log as the step returns.
                [attempt] = attempts(store, handler.id)
                assert (failed.kind, failed.event_ids) == ("retry", (event_id,))
                assert outcome(attempt) == ("retry", 500, (event_id,))
                stored = store.handlers.get(handler.id)
                assert stored is not None and stored.failures == 1
                assert stored.cursor_seq == claimed.cursor_seq  # not past the failed event
                assert failed.handler == stored  # the state the next step starts from

                went = await delivery.step(handler.id, failed.handler)
                first, second = attempts(store, handler.id)
                assert first == attempt
                assert (went.kind, went.event_ids) == ("delivered", (event_id,))
                assert outcome(second) == ("delivered", 200, (event_id,))
                stored = store.handlers.get(handler.id)
                assert stored is not None and stored.failures == 0
                assert stored.cursor_seq > claimed.cursor_seq and went.handler == stored
                assert (await delivery.step(handler.id, went.handler)).kind == "idle"
            finally:
                await delivery.aclose()

        asyncio.run(scenario())
        assert [event_ids(r) for r in receiver.requests] == [[event_id], [event_id]]


RETRY_SECONDS = 0.3


@pytest.mark.parametrize("failure", ["status 500", "connection refused"])
def test_a_failed_event_holds_back_its_handler_until_the_retry_is_due(
    store: Store, failure: str
) -> None:
    """After a failure nothing is sent for the handler before its next attempt is due, and
    events appended meanwhile wait behind the failed one: the receiver and the attempt log see
    the failed event again and again until it goes through, then the later ones, in order."""
    failures = 2
    answered: list[int] = []

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        answered.append(now_ms())
        return (500 if failure == "status 500" and len(answered) <= failures else 200), {}

    # Bound but not listening: connecting is refused, and no other process can take the port.
    with socket.socket() as nobody, receiving(answer) as receiver:
        nobody.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{nobody.getsockname()[1]}/hook"
        refused = failure == "connection refused"
        url = dead_url if refused else receiver.url
        handler = store.handlers.create(2, HandlerSpec(name="h", url=url), new_secret())
        first = append(store, 1)
        later: list[int] = []

        async def scenario() -> list[str]:
            policy = RetryPolicy(schedule=(RETRY_SECONDS,), jitter=0)
            delivery = DeliveryWorker(
                store, SETTINGS, load_catalog(), IdGenerator(2), policy=policy
            )
            kinds: list[str] = []
            deadline = time.monotonic() + 20
            try:
                await delivery.leases.claim()
                while len(receiver.delivered()) < 3:
                    assert time.monotonic() < deadline, f"stuck after {kinds}"
                    before, asked_ms = store.handlers.get(handler.id), now_ms()
                    result = await delivery.step(handler.id)
                    kinds.append(result.kind)
                    if result.kind == "waiting":  # only while the retry is not due yet
                        assert before is not None and before.next_attempt_ms is not None
                        assert asked_ms < before.next_attempt_ms
                        await asyncio.sleep(0.02)
                    if result.kind == "retry" and not later:
                        later.extend(append(store, 2))  # behind the failed event
                    if refused and result.kind == "retry" and kinds.count("retry") == failures:
                        # The receiver is up now (the retry state stays as it was).
                        store.handlers.update(handler.id, (2,), HandlerSpec("h", receiver.url))
                assert (await delivery.step(handler.id)).kind == "idle"
                return kinds
            finally:
                await delivery.aclose()

        kinds = asyncio.run(scenario())
        assert kinds.count("retry") == failures
        assert [k for k in kinds if k != "waiting"] == ["retry", "retry", *["delivered"] * 3]
        assert "waiting" in kinds  # the worker was asked, and held back
        log = attempts(store, handler.id)
        assert [(a.outcome, a.event_ids) for a in log] == [
            ("retry", (first[0],)),
            ("retry", (first[0],)),
            ("delivered", (first[0],)),
            ("delivered", (later[0],)),
            ("delivered", (later[1],)),
        ]
        assert [a.id for a in log] == sorted(a.id for a in log)
        assert [a.at_ms for a in log] == sorted(a.at_ms for a in log)
        for failed, retried in itertools.pairwise(log[: failures + 1]):
            assert retried.at_ms >= failed.at_ms + RETRY_SECONDS * 1000  # not before it was due
        if failure == "status 500":
            assert [event_ids(r) for r in receiver.requests] == [[first[0]]] * 3 + [
                [later[0]],
                [later[1]],
            ]
            for failed, arrival in zip(log[:failures], answered[1:], strict=False):
                assert arrival >= failed.at_ms + RETRY_SECONDS * 1000  # the receiver agrees
        else:
            assert all(a.status is None and a.error for a in log[:failures])
            assert receiver.delivered_ids() == [*first, *later]


def test_events_that_come_in_during_a_send_are_not_passed_over(store: Store) -> None:
    """The read of a handler's next batch starts during its send. Events appended after
    that read, and seen by the worker before the send ended, used to be taken as seen by the
    handler: it went idle past them and its cursor was moved over them, unsent."""
    delivery = worker(store)
    later: list[int] = []

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        if not later:
            time.sleep(0.3)  # the read of the next batch (empty) is done by now
            later.extend(append(store, 2))
            last = store.log.last_seq()
            wait_until(lambda: delivery.watcher.end >= last, 10)  # the worker saw them come
        return 200, {}

    with receiving(answer) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        first = append(store, 1)
        asyncio.run(run_until_recorded(delivery, store, handler.id, 3))
        assert receiver.delivered_ids() == [*first, *later]


def test_a_handler_disabled_while_idle_sends_nothing_more(store: Store) -> None:
    """Disabled while it slept, then events come: it wakes for them and reads its state
    again instead of sending one more batch with the state it had."""
    with receiving() as receiver:
        spec = HandlerSpec(name="h", url=receiver.url)
        handler = store.handlers.create(2, spec, new_secret())
        first = append(store, 1)

        async def scenario() -> None:
            delivery = worker(store)
            running = asyncio.create_task(delivery.run())
            try:
                await asyncio.to_thread(wait_until, lambda: receiver.delivered_ids() == first, 10)
                await asyncio.sleep(0.3)  # idle by now
                store.handlers.update(handler.id, (2,), dataclasses.replace(spec, enabled=False))
                append(store, 2)
                await asyncio.sleep(1.0)  # the wake-up would have sent them within ~0.1 s
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                await delivery.aclose()

        asyncio.run(scenario())
        assert receiver.delivered_ids() == first


def test_the_loop_sends_the_next_batch_while_the_last_one_is_recorded(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() records a delivered batch in the background: the next request goes out while
    the write is still running, yet the attempts are recorded in order, one each, and the
    cursor ends where the receiver's acknowledgements do."""
    real_record = store.handlers.record_delivery
    writing = threading.Event()
    overlapped: list[int] = []

    def slow_record(*args: Any) -> Any:
        writing.set()
        try:
            time.sleep(0.05)
            return real_record(*args)
        finally:
            writing.clear()

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        if writing.is_set():
            overlapped.append(1)
        return 200, {}

    monkeypatch.setattr(store.handlers, "record_delivery", slow_record)
    with receiving(answer) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 6)
        asyncio.run(run_until_recorded(worker(store), store, handler.id, 6))
        assert receiver.delivered_ids() == ids
        assert overlapped  # a request arrived while the one before was being recorded
        log = attempts(store, handler.id)
        assert [(a.outcome, a.event_ids) for a in log] == [("delivered", (i,)) for i in ids]
        stored = store.handlers.get(handler.id)
        assert stored is not None
        assert stored.cursor_seq == max(e.seq for e in store.log.read(0, 100, (2,)))


def test_batches_delivered_during_a_write_are_recorded_together(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit: the batches acknowledged while a handler's bookkeeping is written
    are written together by the next write (their attempts in order, the cursor past the
    last), and no more than MAX_UNSETTLED of them wait for a write."""
    real_record = store.handlers.record_delivery
    groups: list[int] = []

    def slow_record(*args: Any) -> Any:
        time.sleep(0.1)
        delivery, earlier = args[1], args[4] if len(args) > 4 else ()
        groups.append(len(earlier) + 1)
        assert [a.event_ids for a in earlier] == sorted(a.event_ids for a in earlier)
        assert all(a.event_ids < delivery.event_ids for a in earlier)
        return real_record(*args)

    monkeypatch.setattr(store.handlers, "record_delivery", slow_record)
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 30)
        asyncio.run(run_until_recorded(worker(store), store, handler.id, 30))
        assert receiver.delivered_ids() == ids  # each once, in order
        assert sum(groups) == 30 and max(groups) > 1  # fewer writes than batches
        assert max(groups) <= MAX_UNSETTLED
        log = attempts(store, handler.id)
        assert [(a.outcome, a.event_ids) for a in log] == [("delivered", (i,)) for i in ids]
        stored = store.handlers.get(handler.id)
        assert stored is not None
        assert stored.cursor_seq == max(e.seq for e in store.log.read(0, 100, (2,)))


@pytest.mark.parametrize("driven_by", ["step", "run"])
def test_a_delivery_that_cannot_be_recorded_is_delivered_again(
    store: Store, monkeypatch: pytest.MonkeyPatch, driven_by: str
) -> None:
    """record_delivery fails after the receiver got the batch: the cursor did not move, so the
    batch is sent again (same webhook-id, for the receiver to dedupe on), then the rest."""
    real_record = store.handlers.record_delivery
    failed = threading.Event()

    def record_fails_once(*args: Any) -> Any:
        if not failed.is_set():
            failed.set()
            raise StoreUnavailable("the database went away")
        return real_record(*args)

    monkeypatch.setattr(store.handlers, "record_delivery", record_fails_once)
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 3)

        async def by_steps() -> None:
            delivery = worker(store)
            try:
                await delivery.leases.claim()
                with pytest.raises(StoreUnavailable):
                    await delivery.step(handler.id)
                assert attempts(store, handler.id) == []  # sent, but nothing recorded
                kinds = [(await delivery.step(handler.id)).kind for _ in range(4)]
                assert kinds == ["delivered", "delivered", "delivered", "idle"]
            finally:
                await delivery.aclose()

        if driven_by == "step":
            asyncio.run(by_steps())
        else:  # _serve logs the store error, waits a second and goes on
            asyncio.run(run_until_recorded(worker(store), store, handler.id, 3))
        assert failed.is_set()
        received = receiver.delivered()
        sent = [event_ids(r) for r in received]
        again = [[ids[0]], [ids[0]], [ids[1]], [ids[2]]]
        if driven_by == "step":
            assert sent == again
        else:  # _serve may have sent the next batches while the failing record was written
            first = len(sent) - len(ids)  # those are sent again, from the first on
            assert 1 <= first <= len(ids)
            assert sent == [[i] for i in ids[:first]] + [[i] for i in ids]
        webhook_ids = {r.headers["webhook-id"]: event_ids(r) for r in received}
        assert sorted(webhook_ids.values()) == [[i] for i in ids]  # a re-send keeps its id
        log = attempts(store, handler.id)
        assert [(a.outcome, a.event_ids) for a in log] == [("delivered", (i,)) for i in ids]
        stored = store.handlers.get(handler.id)
        assert stored is not None and stored.failures == 0
        assert stored.cursor_seq == max(e.seq for e in store.log.read(0, 100, (2,)))


@pytest.mark.parametrize("claim", ["fails", "misses the handler"])
def test_a_send_in_flight_is_not_cut_off_by_a_claim(
    store: Store, monkeypatch: pytest.MonkeyPatch, claim: str
) -> None:
    """A lease renewal that fails (the database unreachable for a moment) or that leaves the
    handler out (on PostgreSQL it used to skip a row its own bookkeeping had locked) while a
    request is in flight: the request completes and is recorded, nothing is sent twice.
    run() used to cancel the handler's task there, and its new task sent the batch again."""
    settings = SETTINGS.model_copy(update={"delivery_lease_seconds": 0.6})  # renews every 0.2 s
    in_flight, missed = threading.Event(), threading.Event()
    real_claim = store.handlers.claim

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        if not in_flight.is_set():
            in_flight.set()
            missed.wait(10)  # hold the first request until a renewal has missed the handler
        return 200, {}

    def flaky_claim(owner: str, now: int, lease_ms: int) -> list[Handler]:
        claimed = real_claim(owner, now, lease_ms)
        if in_flight.is_set() and not missed.is_set():
            missed.set()
            if claim == "fails":
                raise StoreUnavailable("the database went away")
            return []
        return claimed

    monkeypatch.setattr(store.handlers, "claim", flaky_claim)
    with receiving(answer) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 3)

        delivery = DeliveryWorker(store, settings, load_catalog(), IdGenerator(2))
        asyncio.run(run_until_recorded(delivery, store, handler.id, 3))
        assert missed.is_set()
        assert receiver.delivered_ids() == ids
        log = attempts(store, handler.id)
        assert [(a.outcome, a.event_ids) for a in log] == [("delivered", (i,)) for i in ids]


def test_no_step_starts_on_a_lease_that_could_not_be_renewed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While claims fail the tasks go on only until the last renewal's lease runs out: after
    that another worker may hold the handler, so nothing is sent until a claim succeeds."""
    settings = SETTINGS.model_copy(update={"delivery_lease_seconds": 0.6})  # renews every 0.2 s
    down = threading.Event()
    failed_claims: list[int] = []
    real_claim = store.handlers.claim

    def claim_while_up(owner: str, now: int, lease_ms: int) -> list[Handler]:
        if down.is_set():
            failed_claims.append(now)
            raise StoreUnavailable("the database went away")
        return real_claim(owner, now, lease_ms)

    monkeypatch.setattr(store.handlers, "claim", claim_while_up)
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())

        async def scenario() -> tuple[list[int], list[int]]:
            delivery = DeliveryWorker(store, settings, load_catalog(), IdGenerator(2))
            running = asyncio.create_task(delivery.run())
            try:
                first = await asyncio.to_thread(append, store, 1)
                await asyncio.to_thread(receiver.wait_for, lambda: len(receiver.delivered()) == 1)
                down.set()  # from now on every renewal fails
                # Four failed renewals: 0.8 s, past the 0.6 s lease of the last good one.
                await asyncio.to_thread(wait_until, lambda: len(failed_claims) >= 4, 10)
                later = await asyncio.to_thread(append, store, 1)
                await asyncio.to_thread(wait_until, lambda: len(failed_claims) >= 8, 10)
                assert receiver.delivered_ids() == first  # held back, not sent
                down.clear()
                await asyncio.to_thread(
                    wait_until, lambda: len(attempts(store, handler.id)) == 2, 10
                )
                return first, later
            finally:
                running.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await running
                await delivery.aclose()

        first, later = asyncio.run(scenario())
        assert receiver.delivered_ids() == first + later
        assert [a.event_ids for a in attempts(store, handler.id)] == [tuple(first), tuple(later)]

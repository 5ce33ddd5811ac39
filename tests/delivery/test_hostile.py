"""Hostile receivers and odd data: every failure is an attempt in the log with its error,
backed off and visible in the status, never an exception that loops; a 410 Gone disables the
handler at once, its notice written in the same transaction. Real stores (both backends) and
real loopback receivers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.recorder import HANDLER_DISABLED_TYPE
from herald.delivery.signing import new_secret
from herald.delivery.sinks import webhook as webhook_sink
from herald.delivery.status import handler_status
from herald.delivery.worker import DeliveryWorker
from herald.events.writer import EventWriter
from herald.handlers.types import Delivery, HandlerProgress, HandlerSpec
from herald.ids import IdGenerator
from herald.metrics import REGISTRY
from herald.model import EventIn, OrganisationRef, TypeRef, build_event
from herald.store import Store, StoreError
from herald.timefmt import now_ms
from tests.delivery.receiver import event_ids, receiving
from tests.delivery.test_worker import IDS, append, attempts, disabled_notices
from tests.support.waiting import readable, wait_until

SETTINGS = Settings(
    allow_private_targets=True, delivery_retry_schedule="30", delivery_lease_seconds=30
)


def worker(store: Store) -> DeliveryWorker:
    return DeliveryWorker(store, SETTINGS, load_catalog(), IdGenerator(2))


async def one_step(store: Store, handler_id: int) -> str:
    delivery = worker(store)
    try:
        await delivery.leases.claim()
        return (await delivery.step(handler_id)).kind
    finally:
        await delivery.aclose()


@pytest.mark.parametrize(
    "retry_after",
    ["²", "Fri, 01 Jan 99999999999999999999 00:00:00 GMT", "9" * 40, "-5", "Mon, 32 Foo"],
)
def test_a_hostile_retry_after_is_a_backed_off_attempt(store: Store, retry_after: str) -> None:
    with receiving(lambda _: (503, {"Retry-After": retry_after})) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        [event_id] = append(store, 1)
        before = now_ms()
        assert asyncio.run(one_step(store, handler.id)) == "retry"
    [attempt] = attempts(store, handler.id)
    assert (attempt.outcome, attempt.status, attempt.error) == ("retry", 503, "HTTP 503")
    assert attempt.event_ids == (event_id,)
    stored = store.handlers.get(handler.id)
    assert stored is not None and stored.next_attempt_ms is not None
    # the schedule's 30 s (less jitter), and a day at most whatever the header said
    assert before + 25_000 <= stored.next_attempt_ms <= before + 86_400_000 + 60_000
    status = handler_status(store, stored)
    assert status.state == "retrying" and status.handler.last_error == "HTTP 503"


def test_a_url_the_client_cannot_parse_is_an_attempt_not_a_loop(store: Store) -> None:
    """A handler stored before URLs were checked strictly (a CR LF in it)."""
    with receiving() as receiver:
        spec = HandlerSpec(name="h", url=receiver.url + "\r\nX-Injected: 1")
        handler = store.handlers.create(2, spec, new_secret())
        append(store, 1)
        assert asyncio.run(one_step(store, handler.id)) == "retry"
        assert receiver.requests == []
    [attempt] = attempts(store, handler.id)
    assert attempt.outcome == "retry" and attempt.error and "control characters" in attempt.error
    stored = store.handlers.get(handler.id)
    assert stored is not None and stored.failures == 1 and stored.next_attempt_ms is not None


def test_a_step_that_raises_is_recorded_and_backed_off(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() used to restart a failing handler's task at every lease renewal: a hot loop."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("cannot format")

    monkeypatch.setattr(webhook_sink, "build_request", broken)
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        append(store, 1)

        async def scenario() -> None:
            delivery = worker(store)
            running = asyncio.create_task(delivery.run())
            try:
                await asyncio.to_thread(wait_until, lambda: bool(attempts(store, handler.id)), 10)
                await asyncio.sleep(1.5)  # long enough for a loop to show
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await delivery.aclose()

        asyncio.run(scenario())
    [attempt] = attempts(store, handler.id)
    assert attempt.outcome == "retry"
    assert attempt.error == "internal error: RuntimeError: cannot format"
    stored = store.handlers.get(handler.id)
    assert stored is not None and stored.failures == 1 and stored.next_attempt_ms is not None
    assert handler_status(store, stored).state == "retrying"


def counted(name: str, **labels: str) -> float:
    """A counter of this process's metrics registry (the worker runs in this process)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_410_gone_disables_the_handler_at_once_with_its_notice(store: Store) -> None:
    failures, retries = (
        counted("herald_delivery_failures_total"),
        counted("herald_delivery_retries_total"),
    )
    disabled = counted("herald_deliveries_total", outcome="disabled")
    with receiving(lambda _: (410, {})) as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        [event_id] = append(store, 1)
        assert asyncio.run(one_step(store, handler.id)) == "disabled"
        assert len(receiver.requests) == 1
    # a failed request, not one to try again
    assert counted("herald_delivery_failures_total") == failures + 1
    assert counted("herald_delivery_retries_total") == retries
    assert counted("herald_deliveries_total", outcome="disabled") == disabled + 1
    [attempt] = attempts(store, handler.id)
    assert (attempt.outcome, attempt.status, attempt.event_ids) == ("disabled", 410, (event_id,))
    stored = store.handlers.get(handler.id)
    assert stored is not None and not stored.spec.enabled
    assert stored.disabled_reason == "the receiver answered 410 Gone"
    status = handler_status(store, stored)
    assert (status.state, status.handler.disabled_reason) == (
        "disabled",
        "the receiver answered 410 Gone",
    )
    wait_until(lambda: bool(disabled_notices(store)), 10)
    [notice] = disabled_notices(store)
    assert "410 Gone" in notice["description"]
    assert notice["detail"]["event_handler"]["id"] == handler.id


def notice_for(store: Store, handler_id: int) -> Any:
    event = build_event(
        EventIn(event_type=TypeRef(id=HANDLER_DISABLED_TYPE), description="disabled"),
        organisation=OrganisationRef(id=2, name="Acme"),
        catalog=load_catalog(),
        received_ms=now_ms(),
        internal=True,
        provider="herald",
    )
    assert not isinstance(event, list)
    return event


class KeptIds(IdGenerator):
    """A generator that keeps the ids it gives (the notice's, to find it in the log)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.given: list[int] = []

    def next_ids(self, count: int) -> list[int]:
        ids = super().next_ids(count)
        self.given += ids
        return ids


def test_the_disabled_notice_commits_with_the_disabling_or_not_at_all(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = KeptIds()
    writer = EventWriter(store, ids)
    handler = store.handlers.create(
        2, HandlerSpec(name="h", url="http://127.0.0.1:9/"), new_secret()
    )
    store.handlers.claim("w", now_ms(), 60_000)
    start = store.log.last_seq()
    delivery = Delivery(handler.id, 2, now_ms(), "live", (1,), 410, "disabled", "HTTP 410", 3)
    progress = HandlerProgress(cursor_seq=handler.cursor_seq, failures=1, disabled_reason="gone")

    # another owner: nothing written, the notice neither
    assert (
        writer.append_with(
            [notice_for(store, handler.id)], store.handlers.recording("x", delivery, progress)
        )
        is None
    )

    # the notice cannot be written: neither is the disabling nor the attempt
    def failing(*_: Any) -> Any:
        raise StoreError("disk full")

    real_insert = store.insert_events  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "insert_events", failing)
    with pytest.raises(StoreError):
        writer.append_with(
            [notice_for(store, handler.id)], store.handlers.recording("w", delivery, progress)
        )
    unchanged = store.handlers.get(handler.id)
    assert unchanged is not None and unchanged.spec.enabled and attempts(store, handler.id) == []
    monkeypatch.setattr(store, "insert_events", real_insert)

    notice = notice_for(store, handler.id)
    written = writer.append_with([notice], store.handlers.recording("w", delivery, progress))
    notice_id = ids.given[-1]
    assert written is not None and not written.spec.enabled and written.disabled_reason == "gone"
    readable(store, [notice_id], start)
    [entry] = store.log.read(start, 10, (2,))
    assert (entry.event_id, entry.type_id) == (notice_id, HANDLER_DISABLED_TYPE)
    assert [a.outcome for a in attempts(store, handler.id)] == ["disabled"]


def test_a_replay_over_an_event_with_an_unreadable_timestamp_goes_on(store: Store) -> None:
    """An event stored before dates were bounded (year 999, written as ``999-01-01``) sits
    in a replay's range: it is skipped with a warning; the replay delivers the rest."""
    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        start = store.log.last_seq()
        before = append(store, 1)
        odd = build_event(
            EventIn(event_type=TypeRef(id=10001)),
            organisation=OrganisationRef(id=2, name="Acme"),
            catalog=load_catalog(),
            received_ms=now_ms(),
            internal=True,
        )
        assert not isinstance(odd, list)
        odd.record["timestamp"] = "999-01-01T00:00:00.000Z"
        odd.body = None  # serialised at append, from the record as changed
        [odd_id] = IDS.next_ids(1)
        store.log.append([odd], [odd_id])
        after = append(store, 1)
        readable(store, [*before, odd_id, *after], start)
        store.handlers.create_replay(handler.id, 0, now_ms())

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                await delivery.leases.claim()
                kinds: list[str] = []
                while len(kinds) < 12 and kinds[-1:] != ["idle"]:
                    kinds.append((await delivery.step(handler.id)).kind)
                return kinds
            finally:
                await delivery.aclose()

        kinds = asyncio.run(scenario())
        delivered = [event_ids(r) for r in receiver.delivered()]
    assert kinds[-1] == "idle" and "delivered" in kinds
    # live: all three in order; the replay: the two it can place in time
    assert delivered == [before, [odd_id], after, before, after]
    assert store.handlers.pending_replays(handler.id) == []
    skipped = [a for a in attempts(store, handler.id) if a.outcome == "skipped"]
    assert [(a.kind, a.event_ids) for a in skipped] == [("replay", (odd_id,))]
    assert skipped[0].error == "skipped: the event's timestamp cannot be read"

"""The worker driven step by step over a real SQLite store and a real receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from herald.catalog import load_catalog
from herald.config import Settings
from herald.delivery.signing import new_secret
from herald.delivery.worker import HANDLER_DISABLED_TYPE, DeliveryWorker
from herald.ids import IdGenerator
from herald.model import EventIn, OrganisationRef, TypeRef, build_event
from herald.store import Store, open_store
from herald.store.base import HandlerSpec
from herald.timefmt import now_ms
from tests.delivery.receiver import Received, receiving

SETTINGS = Settings(
    allow_private_targets=True, delivery_retry_schedule="0", delivery_lease_seconds=30
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'herald.db'}", sqlite_synchronous="NORMAL")
    opened.create_organisation("Acme", 2)
    try:
        yield opened
    finally:
        opened.close()


def append(store: Store, count: int, organisation_id: int = 2) -> list[int]:
    ids = IdGenerator(1).next_ids(count)
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
    store.append(events, ids)
    return ids


def worker(store: Store) -> DeliveryWorker:
    return DeliveryWorker(store, SETTINGS, load_catalog(), IdGenerator(2))


def test_failing_past_retention_disables_records_an_event_and_resumes(store: Store) -> None:
    up = {"yes": False}

    def answer(_: Received) -> tuple[int, dict[str, str]]:
        return (200 if up["yes"] else 500), {}

    with receiving(answer) as receiver:
        spec = HandlerSpec(name="h", url=receiver.url, retention_ms=1)
        handler = store.create_handler(2, spec, new_secret())
        store.create_handler(2, HandlerSpec(name="w", url=receiver.url + "/w"), new_secret())
        ids = append(store, 3)

        async def scenario() -> None:
            delivery = worker(store)
            try:
                for _ in range(20):  # fail until past the (1 ms) retention
                    await delivery.run_once()
                    current = store.get_handler(handler.id)
                    if current is not None and not current.spec.enabled:
                        break
                up["yes"] = True
                store.update_handler(handler.id, (2,), spec)  # enabled again
                for _ in range(20):  # one batch per handler per pass
                    if {r.kind for r in await delivery.run_once()} == {"idle"}:
                        break
            finally:
                await delivery.aclose()

        asyncio.run(scenario())
        log = store.read_log(0, 100, (2,))
        notices = [orjson.loads(e.body) for e in log if e.type_id == HANDLER_DISABLED_TYPE]
        assert len(notices) == 1
        assert notices[0]["detail"]["event_handler"]["id"] == handler.id
        assert "retention" in notices[0]["description"]
        attempts = store.list_deliveries(handler.id)
        assert "disabled" in [a.outcome for a in attempts]
        resumed = store.get_handler(handler.id)
        assert resumed is not None and resumed.spec.enabled and resumed.failures == 0
        own = [r for r in receiver.delivered() if r.path == "/hook"]
        delivered = [orjson.loads(r.body)["id"] for r in own]
        assert delivered[:3] == ids  # resumed exactly where it stopped
        assert delivered[3] == notices[0]["id"]
        watched = [orjson.loads(r.body)["id"] for r in receiver.delivered() if r.path == "/hook/w"]
        assert watched == [*ids, notices[0]["id"]]  # the tenant's other handler hears of it


def test_only_one_worker_holds_a_handler(store: Store) -> None:
    store.create_handler(2, HandlerSpec(name="h", url="http://127.0.0.1:9/"), new_secret())

    async def scenario() -> None:
        first, second = worker(store), worker(store)
        try:
            assert len(await first.claim()) == 1
            assert await second.claim() == []
            store.release_handlers(first.owner)
            assert len(await second.claim()) == 1
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(scenario())


def test_a_quiet_tenants_handler_moves_past_other_tenants_events(store: Store) -> None:
    store.create_organisation("Other", 3)
    with receiving() as receiver:
        handler = store.create_handler(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        append(store, 5, organisation_id=3)
        end = store.last_seq()

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                [claimed] = await delivery.claim()
                delivery._last_seq = end  # as run()'s watch saw the log before the step
                kinds = [(await delivery.step(handler.id, claimed)).kind]
                passed = store.get_handler(handler.id)
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
    read_log = store.read_log

    def counted(after_seq: int, *args: object) -> object:
        reads.append(after_seq)
        return read_log(after_seq, *args)  # type: ignore[arg-type]

    with receiving() as receiver:
        handler = store.create_handler(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        ids = append(store, 10)
        monkeypatch.setattr(store, "read_log", counted)

        async def scenario() -> list[str]:
            delivery = worker(store)
            try:
                [state] = await delivery.claim()
                kinds = []
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
    assert reads == [0, store.last_seq()]

"""The one log follower: batches read once, a cursor moved only with its output
(compare-and-set), a loop that outlives failures, and the watcher of many cursors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herald import loops as loops_module
from herald.events.types import LogEntry
from herald.follower import Follower, LogReader, LogWatcher, read_batch
from herald.loops import Loops
from herald.model import NewEvent
from herald.store import Store, open_store
from herald.threads import Threads
from herald.timefmt import format_ms, now_ms


class Table:
    """A cursor kept with its output, as a store keeps one (here in memory)."""

    def __init__(self) -> None:
        self.seq = 0
        self.written: list[list[int]] = []

    def position(self) -> int:
        return self.seq

    def advance(self, after_seq: int, upto_seq: int, output: list[int]) -> bool:
        if self.seq != after_seq:
            return False
        self.seq = upto_seq
        self.written.append(output)
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'herald.db'}", sqlite_synchronous="NORMAL")
    try:
        yield opened
    finally:
        opened.close()


def _append(store: Store, organisations: list[int], first_id: int = 1) -> list[int]:
    """Events of ``organisations`` (one each, type 3) in the log; their ids."""
    ts = now_ms()
    events = []
    for organisation_id in organisations:
        record: dict[str, Any] = {
            "id": None,
            "timestamp": format_ms(ts),
            "event_type": {"id": 3, "description": "t"},
            "organisation": {"id": organisation_id, "name": "org"},
            "alert": False,
            "description": "d",
        }
        events.append(NewEvent(organisation_id, ts, ts, 3, 0, 0, False, 5, "api", None, record))
    ids = list(range(first_id, first_id + len(events)))
    store.log.append(events, ids)
    return ids


async def _ids(entries: list[LogEntry]) -> list[int]:
    return [entry.event_id for entry in entries]


def test_each_entry_is_handled_once_and_the_cursor_moves_with_the_output(store: Store) -> None:
    ids = _append(store, [1] * 25)
    threads = Threads("test-follower", 1)
    table = Table()
    follower = Follower(LogReader(store, threads.run), table, _ids, batch=10)

    async def scenario() -> tuple[int, int]:
        try:
            return await follower.run_once(), await follower.run_once()
        finally:
            await threads.aclose()

    assert asyncio.run(scenario()) == (25, 0)
    assert table.written == [ids[:10], ids[10:20], ids[20:]]
    assert table.seq == store.log.last_seq()


def test_a_cursor_another_owner_moved_takes_nothing_from_this_one(store: Store) -> None:
    ids = _append(store, [1] * 4)
    threads = Threads("test-follower", 1)
    table = Table()

    async def racing(entries: list[LogEntry]) -> list[int]:
        if not table.written and table.seq == 0:  # another owner writes the first two
            table.seq = entries[1].seq
            table.written.append([entries[0].event_id, entries[1].event_id])
        return await _ids(entries)

    follower = Follower(LogReader(store, threads.run), table, racing, batch=10)

    async def scenario() -> list[tuple[int | None, bool]]:
        try:
            return [await follower.step(), await follower.step()]
        finally:
            await threads.aclose()

    assert asyncio.run(scenario()) == [(None, False), (2, True)]
    assert table.written == [ids[:2], ids[2:]]  # every event once, whoever wrote it


def test_a_batch_is_every_organisations_or_a_scan_of_some_up_to_a_position(
    store: Store,
) -> None:
    ids = _append(store, [1, 2, 1, 2, 1])
    seqs = [entry.seq for entry in store.log.read(0, 10)]
    everyone = read_batch(store, 0, 10)
    assert [e.event_id for e in everyone.entries] == ids and everyone.complete
    assert everyone.position == seqs[-1]
    upto = read_batch(store, 0, 10, upto_seq=seqs[2])
    assert [e.event_id for e in upto.entries] == ids[:3] and upto.position == seqs[2]
    mine = read_batch(store, 0, 10, (2,))
    assert [e.event_id for e in mine.entries] == [ids[1], ids[3]] and mine.complete
    short = read_batch(store, 0, 2)
    assert [e.event_id for e in short.entries] == ids[:2] and not short.complete


def test_a_failing_follower_shows_in_its_loop_health_and_recovers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loops_module, "FIRST_BACKOFF_SECONDS", 0.01)
    _append(store, [1] * 3)
    threads = Threads("test-follower", 1)
    loops = Loops()
    table = Table()
    failures = [RuntimeError("the store went away")]

    async def flaky(entries: list[LogEntry]) -> list[int]:
        if failures:
            raise failures.pop()
        return await _ids(entries)

    follower = Follower(LogReader(store, threads.run), table, flaky, batch=10)

    async def scenario() -> dict[str, object]:
        seen: dict[str, object] = {}

        def active() -> bool:
            if loops.failing():
                seen.update(loops.report()["counter"])
            return table.seq < store.log.last_seq()

        try:
            await asyncio.wait_for(follower.run(loops, "counter", 0.01, active=active), 30)
            return seen
        finally:
            await threads.aclose()

    failed = asyncio.run(scenario())
    assert failed["healthy"] is False
    assert failed["last_error"] == "RuntimeError: the store went away"
    assert loops.report()["counter"]["healthy"] is True
    assert len(table.written) == 1


def test_the_watcher_wakes_the_organisations_whose_events_came(store: Store) -> None:
    threads = Threads("test-follower", 1)
    watcher = LogWatcher(LogReader(store, threads.run))

    async def scenario() -> tuple[bool, bool, list[bool]]:
        try:
            mine = asyncio.create_task(watcher.wait(1, timeout=30))
            others = asyncio.create_task(watcher.wait(2, timeout=0.05))
            await asyncio.sleep(0)
            await threads.run(_append, store, [1, 1])
            await watcher.poll()
            news = [
                watcher.has_news(1, None, 0),
                watcher.has_news(1, {3}, 0),
                watcher.has_news(1, {4}, 0),  # not of a type it wants
                watcher.has_news(2, None, 0),  # not its events
                watcher.has_news(1, None, watcher.end),  # seen already
            ]
            return await mine, await others, news
        finally:
            await threads.aclose()

    woken, others_woken, news = asyncio.run(scenario())
    assert (woken, others_woken) == (True, False)
    assert news == [True, True, False, False, False]

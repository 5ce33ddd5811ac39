"""A small tenant's handler among a big tenant's events: the worker reads its log a window at
a time (``store.log.scan``), live and in a replay, and still delivers each of its events once."""

from __future__ import annotations

import asyncio
import functools

import orjson
import pytest

from herald.delivery.signing import new_secret
from herald.events.types import LogScan
from herald.handlers.types import Handler, HandlerSpec
from herald.store import Store
from herald.timefmt import now_ms
from tests.delivery.receiver import receiving
from tests.delivery.test_worker import append, worker

WINDOW = 100


def test_a_small_tenants_handler_reads_a_window_at_a_time_live_and_replayed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans: list[tuple[int, LogScan]] = []
    scan_log = functools.partial(store.log.scan, scan_rows=WINDOW)

    def windowed(after_seq: int, *args: object, **kwargs: object) -> LogScan:
        scan = scan_log(after_seq, *args, **kwargs)  # type: ignore[arg-type]
        scans.append((after_seq, scan))
        return scan

    with receiving() as receiver:
        handler = store.handlers.create(2, HandlerSpec(name="h", url=receiver.url), new_secret())
        theirs: list[int] = []
        for _ in range(3):
            append(store, 250, organisation_id=1)
            theirs += append(store, 1)
        append(store, 250, organisation_id=1)
        monkeypatch.setattr(store.log, "scan", windowed)

        async def scenario() -> tuple[list[int], list[int]]:
            delivery = worker(store)
            try:
                [claimed] = await delivery.leases.claim()
                state: Handler | None = claimed
                for _ in range(200):  # live, then (once idle) the replay asked for meanwhile
                    result = await delivery.step(handler.id, state)
                    state = result.handler  # None: the next step reads it (as ``run`` does)
                    if result.kind == "idle" and not store.handlers.pending_replays(handler.id):
                        if len(receiver.delivered()) > len(theirs):
                            break
                        store.handlers.create_replay(handler.id, 0, now_ms())
                else:
                    raise AssertionError("the replay never ended")
            finally:
                await delivery.aclose()
            ids = [orjson.loads(r.body)["id"] for r in receiver.delivered()]
            return ids[: len(theirs)], ids[len(theirs) :]

        live, replayed = asyncio.run(scenario())

    assert live == theirs and replayed == theirs
    log = [entry.seq for entry in store.log.read(0, 10_000)]
    looked = [sum(after < seq <= scan.position for seq in log) for after, scan in scans]
    assert len(scans) > len(log) // WINDOW  # the log of 1,003 rows took many reads
    assert max(looked) <= WINDOW  # and none looked at more than a window of it

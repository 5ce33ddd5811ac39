"""The simulated world: deterministic, valid against the catalogue, plausible per device."""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from herald.catalog import load_catalog
from herald.events.writer import EventWriter
from herald.ids import IdGenerator
from herald.model import OrganisationRef
from herald.simulate import World
from herald.simulate.backfill import to_new_events
from herald.simulate.device import DeviceLife
from herald.store import open_store
from herald.timefmt import parse_timestamp, to_ms

DAY = 86_400_000
START = 1_790_000_000_000  # a fixed moment: the history is a pure function of the seed


def _history(seed: int = 7, days: int = 6) -> list[dict[str, Any]]:
    return list(World(3, 80, seed).events(START, START + days * DAY))


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return _history()


def test_the_same_seed_gives_the_same_history(history: list[dict[str, Any]]) -> None:
    assert _history() == history
    assert _history(seed=8) != history


def test_every_event_passes_the_write_path_checks(
    history: list[dict[str, Any]], tmp_path: Path
) -> None:
    organisations = {i: OrganisationRef(id=i, name=f"org {i}") for i in (1, 2, 3)}
    with contextlib.closing(open_store(f"sqlite:///{tmp_path}/writer.db")) as store:
        writer = EventWriter(store, IdGenerator(1), load_catalog())  # builds; writes nothing
        built = to_new_events(history, organisations, writer, START + 30 * DAY)
    assert len(built) == len(history) > 5000


def test_the_history_covers_what_a_fleet_lives_through(history: list[dict[str, Any]]) -> None:
    types = {event["event_type"]["id"] for event in history}
    lifecycle = {44, 51, 45, 8, 9}
    network = {1, 2, 3, 5, 15, 16}
    quotas_and_sms = {18, 19, 56, 58, 1009, 1010}
    account = {6, 7, 30, 52, 54, 1023, 1024, 1026, 1027, 1033}
    custom = {10001, 10002, 10003}
    assert lifecycle | network | quotas_and_sms | account | custom <= types
    descriptions = {e["description"] for e in history if e["event_type"]["id"] == 3}
    assert any("rejected" in text for text in descriptions)


def _by_device(history: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    devices: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in history:
        if "endpoint" in event:
            devices[event["endpoint"]["id"]].append(event)
    return iter(devices.values())


class DeviceStory:
    """What a device's events claim, checked one by one against what must come before."""

    def __init__(self) -> None:
        self.status = "activated"  # a device already running when the history starts
        self.attached = False
        self.session = False
        self.ended = False

    def check(self, event: dict[str, Any]) -> None:
        type_id, text = event["event_type"]["id"], event["description"]
        detail = event.get("detail") or {}
        assert not self.ended, "an event after the SIM was released"
        assert "volume" not in detail or type_id in (5, 18, 19, 56, 58, 60), type_id
        if type_id == 44:
            self.status = "issued"
        elif type_id == 45:
            assert self.status == "issued"
            self.status = "factory_test"
        elif type_id == 8:
            assert self.status in ("factory_test", "suspended")
            self.status = "activated"
        elif type_id == 9:
            self.status = "suspended"
        elif type_id in (1, 2):
            assert self.status in ("factory_test", "activated", "suspended")
            self.attached = True
        elif type_id == 16:
            assert not self.session, "purged during a data session"
            self.attached = False
        elif type_id == 3 and "rejected" in text:
            assert not self.session
            if "not activated" in text:
                assert self.status == "suspended"
        elif type_id == 3:
            assert self.attached, "a data session before attach"
            assert self.status in ("factory_test", "activated")
            assert not self.session
            self.session = True
        elif type_id == 5:
            assert self.session, "a session closed that was never opened"
            assert detail["volume"]["total"] >= 0
            self.session = False
        elif type_id == 50:
            assert self.status == "deleted"
            self.ended = True
        if type_id == 10:
            self.status = "deleted"


def test_each_device_story_is_plausible(history: list[dict[str, Any]]) -> None:
    stories = 0
    for events in _by_device(history):
        story = DeviceStory()
        for event in events:
            story.check(event)
        times = [to_ms(parse_timestamp(e["timestamp"])) for e in events]
        assert all(a <= b for a, b in pairwise(times)), "a device's events out of order"
        stories += 1
    assert stories == 80


class _Fated(random.Random):
    """Every roll lands in the last, rarest branch: the SIM is deleted."""

    def random(self) -> float:
        return 0.99999


def test_a_deleted_sim_is_released_and_falls_silent() -> None:
    (device,) = World(1, 1, 1).devices
    life = DeviceLife(device, _Fated(1), START, new=False)
    events: list[dict[str, Any]] = []
    while life.next_ms is not None:
        events.extend(life.step(life.next_ms))
    assert [e["event_type"]["id"] for e in events] == [1, 2, 16, 15, 10, 50]
    story = DeviceStory()
    for event in events:
        story.check(event)
    assert story.ended

from __future__ import annotations

import time

import pytest

from herald.ids import (
    EPOCH_MS,
    MAX_NODE,
    MAX_PUBLIC_ID,
    MAX_SEQUENCE,
    NODE_BITS,
    SEQUENCE_BITS,
    IdGenerator,
    draw_public_ids,
    id_time_ms,
    next_public_id,
    public_id_bounds,
    public_id_ms,
)


def test_ids_increase_and_carry_their_time() -> None:
    generator = IdGenerator(node_id=7)
    before = int(time.time() * 1000)
    ids = generator.next_ids(10_000)
    after = int(time.time() * 1000)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(0 < i < 2**63 for i in ids)
    assert before <= id_time_ms(ids[0]) <= id_time_ms(ids[-1]) <= after + 10


def test_nodes_never_collide() -> None:
    first, second = IdGenerator(node_id=1), IdGenerator(node_id=2)
    assert not set(first.next_ids(5000)) & set(second.next_ids(5000))


def test_node_id_is_bounded() -> None:
    with pytest.raises(ValueError):
        IdGenerator(node_id=MAX_NODE + 1)


def test_a_node_id_is_required() -> None:
    """No fallback to the process id (two such generators collided in 1,179 of 2,000 draws):
    the node id comes from the store's lease."""
    with pytest.raises(TypeError):
        IdGenerator()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="leased from the store"):
        IdGenerator(None)  # type: ignore[arg-type]


def test_a_tenants_ids_do_not_count_other_tenants_events() -> None:
    """Issue 28 #6: the slot bits were a counter shared by every organisation, so two of A's
    ids in one millisecond told how many events B wrote in between (second - first - 1).
    Now A's gap has the same spread whether B wrote nothing or 1,000 events."""

    def gaps(others: int) -> list[int]:
        found = []
        for _ in range(200):
            generator = IdGenerator(node_id=5, clock=lambda: 1_700_000_000.0)  # one millisecond
            first = generator.next_id()
            generator.next_ids(others)  # another organisation's batch
            second = generator.next_id()
            assert id_time_ms(first) == id_time_ms(second) == 1_700_000_000_000
            found.append(abs(second - first))
        return found

    alone, crowded = gaps(0), gaps(1000)
    assert sum(gap == 1 for gap in alone) < 20  # a counter: always 1
    assert sum(gap == 1001 for gap in crowded) < 20  # a counter: always 1001
    # uniform slots: a mean distance near 4096 / 3 either way (standard error about 70)
    assert abs(sum(alone) / 200 - sum(crowded) / 200) < 500
    assert all(500 < sum(found) / 200 < 2200 for found in (alone, crowded))


def test_one_millisecond_gives_every_slot_once_then_borrows_the_next() -> None:
    generator = IdGenerator(node_id=MAX_NODE, clock=lambda: 1_700_000_000.0)
    calls = [generator.next_ids(size) for size in (1, 999, 3000, 96, 1, 500)]
    ids = [i for call in calls for i in call]
    assert all(call == sorted(call) for call in calls)  # a batch keeps its order
    assert len(set(ids)) == len(ids) == 4597
    assert all(i >> SEQUENCE_BITS & MAX_NODE == MAX_NODE for i in ids)
    times = [id_time_ms(i) for i in ids]
    assert times == sorted(times)  # never an earlier millisecond than an id before
    assert times.count(1_700_000_000_000) == 4096 and times[-1] == 1_700_000_000_001
    assert {i & MAX_SEQUENCE for i in ids[:4096]} == set(range(4096))


def test_public_ids_skip_the_taken_and_stay_safe_integers() -> None:
    ms = public_id_ms(1_700_000_000_123)
    low, high = public_id_bounds(ms)
    taken = [low, low + 7, high, 5]  # 5: an old counter id, another millisecond
    drawn = draw_public_ids(ms, taken, 5000)
    assert len(drawn) == 4093 and drawn == sorted(drawn)  # the millisecond's free slots
    assert set(drawn) | {low, low + 7, high} == set(range(low, high + 1))
    assert all(id_time_ms(i << NODE_BITS) == 1_700_000_000_123 for i in drawn)
    last = draw_public_ids(public_id_ms(EPOCH_MS + 2**41 - 1), [], 4096)  # in 2089
    assert max(last) == MAX_PUBLIC_ID == 2**53 - 1  # Number.MAX_SAFE_INTEGER


def test_public_ids_are_not_a_counter() -> None:
    """Two draws in one millisecond with another organisation's rows between them: the slots
    are random, so their distance says nothing of how many were made in between."""
    ms = public_id_ms(1_700_000_000_000)
    distances = []
    for others in (0, 100) * 100:
        (first,) = draw_public_ids(ms, [], 1)
        between = draw_public_ids(ms, [first], others)
        (second,) = draw_public_ids(ms, [first, *between], 1)
        distances.append(abs(second - first))
    assert sum(d == 1 for d in distances[::2]) < 20 and sum(d == 101 for d in distances[1::2]) < 20
    assert 500 < sum(distances) / 200 < 2200  # uniform slots: about 4096 / 3


def test_next_public_id_follows_its_handler_and_is_drawn_at_random() -> None:
    """Attempt-log and replay ids (issue 28 #6): a handler's next id is above its last one,
    a random slot of the millisecond, not the next number of a shared counter."""
    ms = public_id_ms(1_700_000_000_000)
    low, high = public_id_bounds(ms)
    fresh = [next_public_id(ms) for _ in range(200)]
    assert all(low <= i <= high <= MAX_PUBLIC_ID for i in fresh)
    assert len(set(fresh)) > 150 and sum(fresh) / 200 - low > 1000  # spread over 0..4095
    assert low <= next_public_id(ms, 42) <= high  # after a counter of before 0020: now
    last = low | 4000
    assert all(last < next_public_id(ms, last) <= high for _ in range(100))  # above its last
    later = public_id_bounds(ms + 5)[0] | 7  # the handler's last is in a later millisecond
    assert all(later < next_public_id(ms, later) <= later | MAX_SEQUENCE for _ in range(100))
    full = high  # no slot left above: the next millisecond
    assert all(high < next_public_id(ms, full) <= high + 4096 for _ in range(100))
    chain = [next_public_id(ms)]
    for _ in range(100):
        chain.append(next_public_id(ms, chain[-1]))
    assert chain == sorted(set(chain)) and chain[-1] >> SEQUENCE_BITS < ms + 50

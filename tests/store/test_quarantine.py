"""The ingest quarantine's store methods, on each backend."""

from __future__ import annotations

import hashlib

import orjson

from herald.ids import MAX_PUBLIC_ID, NODE_BITS, id_time_ms
from herald.store import Store
from herald.store.rejections import NewRejection
from herald.timefmt import now_ms

DAY = 86_400_000


def _rejection(organisation_id: int, record: object, received_ms: int) -> NewRejection:
    raw = orjson.dumps(record)
    return NewRejection(
        organisation_id=organisation_id,
        provider="emnify",
        digest=hashlib.sha256(raw).hexdigest(),
        received_ms=received_ms,
        errors=[{"field": "alert", "reason": "must be true/false or 1/0"}],
        record=raw,
    )


def test_a_record_is_kept_once_per_organisation(store: Store) -> None:
    acme, other = store.create_organisation("Acme").id, store.create_organisation("Other").id
    now = now_ms()
    record = {"id": 1, "alert": "maybe", "description": "Grüße"}
    first = store.quarantine([_rejection(acme, record, now), _rejection(acme, [1, 2], now)])
    again = store.quarantine([_rejection(acme, record, now + 5), _rejection(other, record, now)])
    assert [new for _, new in first] == [True, True]
    assert again[0] == (first[0][0], False)  # the same bytes again: the same row
    assert again[1][1] is True  # another organisation's quarantine is its own
    rows, total = store.list_rejected((acme,))
    assert total == 2 and [row.id for row in rows] == sorted((i for i, _ in first), reverse=True)
    kept = store.get_rejected(first[0][0], (acme,))
    assert kept is not None and orjson.loads(kept.record) == record
    assert kept.errors[0]["field"] == "alert" and kept.attempts == 1
    assert store.get_rejected(first[0][0], (other,)) is None
    assert store.list_rejected(None)[1] == 3
    assert store.list_rejected((acme,), "stacuity") == ([], 0)


def test_retries_count_and_release(store: Store) -> None:
    acme = store.create_organisation("Acme").id
    now = now_ms()
    (a, _), (b, _) = store.quarantine([_rejection(acme, i, now) for i in ("a", "b")])
    store.refuse_again([(a, [{"field": "timestamp", "reason": "too old"}])], now + 10)
    retried = store.get_rejected(a, None)
    assert retried is not None
    assert (retried.attempts, retried.attempted_ms) == (2, now + 10)
    assert retried.errors == [{"field": "timestamp", "reason": "too old"}]
    assert [row.id for row in store.oldest_rejected((acme,), "emnify", 10)] == [a, b]
    assert store.release_rejected([b]) == 1
    assert [row.id for row in store.oldest_rejected(None, None, 10)] == [a]


def test_purge_by_when_received(store: Store) -> None:
    acme = store.create_organisation("Acme").id
    now = now_ms()
    store.quarantine([_rejection(acme, "old", now - 40 * DAY), _rejection(acme, "new", now)])
    assert store.purge_rejected(now - 30 * DAY) == 1
    (left,), _ = store.list_rejected(None)
    assert orjson.loads(left.record) == "new"


def test_quarantine_ids_tell_nothing_of_other_organisations(store: Store) -> None:
    """Issue 28 #6: quarantine ids were a counter shared by all organisations, so a tenant's
    ids counted the others' quarantined records. Each is now a random free slot of the
    millisecond it was kept in: unique, below 2**53, increasing within one batch."""
    acme, other = store.create_organisation("Acme").id, store.create_organisation("Other").id
    now = now_ms()
    kept: list[int] = []
    for organisation_id in (acme, other, acme, other, acme):
        batch = [
            _rejection(organisation_id, [organisation_id, len(kept), i], now) for i in range(3)
        ]
        ids = [entry[0] for entry in store.quarantine(batch) if entry is not None]
        assert len(ids) == 3 and ids == sorted(ids)  # a batch keeps its order
        kept += ids
    assert len(set(kept)) == 15 and all(0 < i <= MAX_PUBLIC_ID for i in kept)
    assert max(kept) - min(kept) > 14  # a counter: 15 ids in a row
    assert all(id_time_ms(i << NODE_BITS) >= now for i in kept)  # the time they were kept
    mine = store.get_rejected(kept[0], (acme,))
    assert mine is not None and store.get_rejected(kept[0], (other,)) is None

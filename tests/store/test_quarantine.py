"""The ingest quarantine's store methods, on each backend."""

from __future__ import annotations

import hashlib

import orjson

from herald.ids import MAX_PUBLIC_ID, NODE_BITS, id_time_ms
from herald.store import Store
from herald.store.rejections import NewRejection, QuarantineLimits, Rejected
from herald.timefmt import now_ms

DAY = 86_400_000
ERRORS = [{"field": "alert", "reason": "must be true/false or 1/0"}]


def _rejection(
    organisation_id: int, record: object, received_ms: int, keep: int | None = None
) -> NewRejection:
    """A record to quarantine; ``keep``: only its first bytes are kept (truncated)."""
    raw = orjson.dumps(record)
    kept, original = (raw, None) if keep is None else (raw[:keep], len(raw))
    return NewRejection(
        organisation_id=organisation_id,
        provider="emnify",
        digest=hashlib.sha256(raw).hexdigest(),
        received_ms=received_ms,
        errors=ERRORS,
        record=kept,
        original_bytes=original,
    )


def _ids(kept: list[tuple[int, bool] | None]) -> list[int]:
    assert None not in kept
    return [row[0] for row in kept if row is not None]


def _weight(rejection: NewRejection) -> int:
    """What a record counts in its organisation's quarantine: its bytes and its reasons'."""
    return len(rejection.record) + len(orjson.dumps(rejection.errors))


def _recount(store: Store, organisation_id: int) -> tuple[int, int]:
    """The organisation's usage counted from its records themselves."""
    page = store.quarantine.page((organisation_id,), per_page=1000)
    return page.total, sum(len(r.record) + len(orjson.dumps(r.errors)) for r in page.records)


def test_a_record_is_kept_once_per_organisation(store: Store) -> None:
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    now = now_ms()
    record = {"id": 1, "alert": "maybe", "description": "Grüße"}
    first = store.quarantine.keep([_rejection(acme, record, now), _rejection(acme, [1, 2], now)])
    again = store.quarantine.keep(
        [_rejection(acme, record, now + 5), _rejection(other, record, now)]
    )
    assert [row[1] for row in first if row] == [True, True]
    assert again[0] == (_ids(first)[0], False)  # the same bytes again: the same row
    assert again[1] is not None and again[1][1] is True  # another organisation's is its own
    rows, total, more = store.quarantine.page((acme,))
    assert total == 2 and [row.id for row in rows] == sorted(_ids(first), reverse=True)
    assert more is None
    kept = store.quarantine.get(_ids(first)[0], (acme,))
    assert kept is not None and orjson.loads(kept.record) == record
    assert kept.errors[0]["field"] == "alert" and kept.attempts == 1
    assert (kept.truncated, kept.size) == (False, len(orjson.dumps(record)))
    assert kept.digest == hashlib.sha256(orjson.dumps(record)).hexdigest()
    assert store.quarantine.get(_ids(first)[0], (other,)) is None
    assert store.quarantine.page(None).total == 3
    assert store.quarantine.page((acme,), "stacuity") == ([], 0, None)


def test_retries_count_and_release(store: Store) -> None:
    acme = store.organisations.create("Acme").id
    now = now_ms()
    a, b = _ids(store.quarantine.keep([_rejection(acme, i, now) for i in ("a", "b")]))
    store.quarantine.refuse_again([(a, [{"field": "timestamp", "reason": "too old"}])], now + 10)
    retried = store.quarantine.get(a, None)
    assert retried is not None
    assert (retried.attempts, retried.attempted_ms) == (2, now + 10)
    assert retried.errors == [{"field": "timestamp", "reason": "too old"}]
    assert [row.id for row in store.quarantine.oldest((acme,), "emnify", 10)] == [a, b]
    assert store.quarantine.release([b]) == 1
    assert [row.id for row in store.quarantine.oldest(None, None, 10)] == [a]
    assert store.quarantine.usage(acme) == _recount(store, acme)


def test_purge_by_when_received(store: Store) -> None:
    acme = store.organisations.create("Acme").id
    now = now_ms()
    store.quarantine.keep([_rejection(acme, "old", now - 40 * DAY), _rejection(acme, "new", now)])
    assert store.quarantine.purge(now - 30 * DAY) == 1
    (left,), _, _ = store.quarantine.page(None)
    assert orjson.loads(left.record) == "new"
    assert (
        store.quarantine.usage(acme)
        == _recount(store, acme)
        == (1, _weight(_rejection(acme, "new", now)))
    )
    assert store.quarantine.purge(now - 30 * DAY) == 0


def test_a_full_quarantine_keeps_what_it_knows_and_refuses_the_rest(store: Store) -> None:
    """Issue 28: an organisation's quarantine holds at most so many records and bytes; a new
    record beyond them is refused (None), one it holds already is still found, another
    organisation's quarantine is untouched, and a release makes room again."""
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    now = now_ms()
    one, two, three = (_rejection(acme, f"record {i}", now) for i in range(3))
    limits = QuarantineLimits(records=2, bytes=10_000)
    kept = store.quarantine.keep([one, two, three], limits)
    assert kept[2] is None and _ids(kept[:2])
    again = store.quarantine.keep([one, three], limits)
    assert again == [(kept[0][0] if kept[0] else 0, False), None]
    assert _ids(store.quarantine.keep([_rejection(other, "record 2", now)], limits))
    assert store.quarantine.usage(acme) == (2, _weight(one) + _weight(two))
    store.quarantine.release(_ids(kept[:1]))
    assert store.quarantine.keep([three], limits)[0] is not None
    assert store.quarantine.usage(acme) == _recount(store, acme) == (2, _weight(two) * 2)

    big = _rejection(acme, "x" * 3000, now)
    by_bytes = QuarantineLimits(records=100, bytes=_weight(two) * 2 + _weight(big) - 1)
    assert store.quarantine.keep([big], by_bytes) == [None]  # one byte too many
    assert store.quarantine.count((acme,)) == 2


def test_pages_stop_at_their_byte_budget(store: Store) -> None:
    """A page holds the records that fit ``max_bytes`` (one at least, whatever its size) and
    says where the next starts; following the cursors reads every record once."""
    acme = store.organisations.create("Acme").id
    now = now_ms()
    records = [_rejection(acme, "y" * 1000 + str(i), now) for i in range(7)]
    ids = _ids(store.quarantine.keep(records))
    weight = _weight(records[0])
    first = store.quarantine.page((acme,), per_page=100, max_bytes=2 * weight + 10)
    assert [r.id for r in first.records] == ids[::-1][:2]
    assert first.total == 7 and first.next_before == ids[-2]
    seen, before, pages = [], None, 0
    while True:
        page = store.quarantine.page((acme,), per_page=3, before=before, max_bytes=2 * weight)
        seen += [r.id for r in page.records]
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == ids[::-1] and pages == 4
    tiny = store.quarantine.page((acme,), per_page=100, max_bytes=1)
    assert len(tiny.records) == 1 and tiny.next_before == ids[-1]  # one record at least
    assert [r.id for r in store.quarantine.oldest((acme,), None, 100, 3 * weight)] == ids[:3]


def test_a_truncated_record_says_so_and_is_not_retried(store: Store) -> None:
    acme = store.organisations.create("Acme").id
    now = now_ms()
    whole, cut = _rejection(acme, "whole", now), _rejection(acme, "z" * 5000, now, keep=100)
    cut_id, whole_id = _ids(store.quarantine.keep([cut, whole]))
    kept = store.quarantine.get(cut_id, (acme,))
    assert isinstance(kept, Rejected)
    assert (kept.truncated, kept.size, len(kept.record)) == (True, 5002, 100)
    assert kept.digest == hashlib.sha256(orjson.dumps("z" * 5000)).hexdigest()
    assert [r.id for r in store.quarantine.oldest((acme,), None, 10)] == [whole_id]
    assert store.quarantine.count((acme,), truncated=True) == 1
    assert store.quarantine.count((acme,), "emnify", truncated=False) == 1
    assert store.quarantine.usage(acme) == (2, _weight(cut) + _weight(whole))


def test_quarantine_ids_tell_nothing_of_other_organisations(store: Store) -> None:
    """Issue 28 #6: quarantine ids were a counter shared by all organisations, so a tenant's
    ids counted the others' quarantined records. Each is now a random free slot of the
    millisecond it was kept in: unique, below 2**53, increasing within one batch."""
    acme, other = store.organisations.create("Acme").id, store.organisations.create("Other").id
    now = now_ms()
    kept: list[int] = []
    for organisation_id in (acme, other, acme, other, acme):
        batch = [
            _rejection(organisation_id, [organisation_id, len(kept), i], now) for i in range(3)
        ]
        ids = [entry[0] for entry in store.quarantine.keep(batch) if entry is not None]
        assert len(ids) == 3 and ids == sorted(ids)  # a batch keeps its order
        kept += ids
    assert len(set(kept)) == 15 and all(0 < i <= MAX_PUBLIC_ID for i in kept)
    assert max(kept) - min(kept) > 14  # a counter: 15 ids in a row
    assert all(id_time_ms(i << NODE_BITS) >= now for i in kept)  # the time they were kept
    mine = store.quarantine.get(kept[0], (acme,))
    assert mine is not None and store.quarantine.get(kept[0], (other,)) is None

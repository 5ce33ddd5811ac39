"""The one write path: every event enters the log through ``EventWriter.append``.

The event API, provider ingest, security events, the simulator and the demo all write
here, so that each of them gets ids from the process's generator, one transaction per batch
and its count in ``herald_events_ingested_total``. (The delivery worker's "handler disabled"
notice is the exception: ``Store.handlers.record_delivery`` appends it in the transaction that
disables the handler, and the worker counts it.)
The events given are not modified.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from herald import metrics
from herald.ids import IdGenerator
from herald.model import NewEvent
from herald.store import Store


@dataclass(frozen=True, slots=True)
class Appended:
    """What an append did: each event's stored record and whether it is new."""

    records: list[bytes]  # in the order given; a repeat's is the record stored before
    ids: list[int]  # the id each record has
    fresh: list[bool]  # False: the producer's id was stored already (nothing written)

    @property
    def duplicates(self) -> int:
        return self.fresh.count(False)


class EventWriter:
    """Appends events to the store, counting what each producer wrote."""

    def __init__(self, store: Store, ids: IdGenerator) -> None:
        self.store = store
        self.ids = ids

    def append(self, events: Sequence[NewEvent]) -> Appended:
        """Store ``events`` in one transaction (all or none); blocking, so run it off the
        event loop. A repeat of a stored (provider, external id) is not stored again."""
        if not events:
            return Appended([], [], [])
        assigned = self.ids.next_ids(len(events))
        records = self.store.log.append(events, assigned)
        ids = [
            assigned_id if event.external_id is None else int(orjson.loads(record)["id"])
            for event, record, assigned_id in zip(events, records, assigned, strict=True)
        ]
        fresh = [stored == given for stored, given in zip(ids, assigned, strict=True)]
        written = Counter(event.provider for event, new in zip(events, fresh, strict=True) if new)
        for provider, count in written.items():
            metrics.EVENTS_INGESTED.labels(provider).inc(count)
        return Appended(records, ids, fresh)

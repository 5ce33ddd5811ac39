"""The one write path: every event enters the log through an ``EventWriter``.

The event API, provider ingest, security events, the delivery worker's "handler disabled"
notice, device status changes, the rules' alerts, the simulator and the demo all build their
events with ``EventWriter.build`` (checked against the catalogue, defaults filled in) and
store them with ``append`` or ``append_with``: ids from the process's generator, one
transaction per batch (``store.log``'s, which other rows that must commit with the events
join: a delivery's bookkeeping, a state change, the rules' groups and position) and the
count in ``herald_events_ingested_total``. The events given are not modified.
After each commit the writer hands what it appended to its observers (``observe``: the
device-state owner folds the events as built, not read back).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from herald import metrics
from herald.catalog import Catalog, load_catalog
from herald.events.build import build_event
from herald.events.codec import Checked, EventIn, FieldError, OrganisationRef
from herald.ids import IdGenerator
from herald.record import NewEvent
from herald.store import Store

T = TypeVar("T")
Observer = Callable[[Sequence[NewEvent], "Appended"], None]


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
    """Builds events and appends them to the store, counting what each producer wrote."""

    def __init__(self, store: Store, ids: IdGenerator, catalog: Catalog | None = None) -> None:
        self.store = store
        self.ids = ids
        self.catalog = catalog or load_catalog()
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` with each batch appended and what the append did, after its
        commit, in the appending thread (so it must be quick and must not raise)."""
        self._observers.append(observer)

    def build(
        self,
        event: Checked | EventIn,
        *,
        organisation: OrganisationRef,
        received_ms: int,
        internal: bool,
        provider: str = "api",
        max_future_ms: int = 5000,
        provider_type: str | None = None,
        retention_days: float | None = None,
    ) -> NewEvent | list[FieldError]:
        """``event`` (a producer's, checked by ``events.codec``, or one Herald made) checked
        against the catalogue with its defaults filled in and its record serialised, ready
        to append, or every reason it is refused (``events.build.build_event``)."""
        return build_event(
            event,
            organisation=organisation,
            catalog=self.catalog,
            received_ms=received_ms,
            internal=internal,
            provider=provider,
            max_future_ms=max_future_ms,
            provider_type=provider_type,
            retention_days=retention_days,
        )

    def append(self, events: Sequence[NewEvent]) -> Appended:
        """Store ``events`` in one transaction (all or none); blocking, so run it off the
        event loop. A repeat of a stored (provider, external id) is not stored again."""
        if not events:
            return Appended([], [], [])
        assigned = self.ids.next_ids(len(events))
        return self._counted(events, assigned, self.store.log.append(events, assigned))

    def append_with(
        self,
        events: Sequence[NewEvent],
        joined: Callable[[Any], T | None],
        *,
        standing: Callable[[T], Sequence[bool]] | None = None,
        durable: bool = True,
    ) -> T | None:
        """In one transaction: ``joined``'s rows (a repository's work on the transaction's
        connection, e.g. ``store.handlers.recording``), then ``events``; ``joined``'s
        answer. None: ``joined`` wrote nothing, and neither are the events. ``standing``:
        which of ``events`` are appended, told by ``joined``'s answer (the rules' alerts of
        rules not changed meanwhile). Not ``durable``: the commit does not wait for the
        disk (delivery bookkeeping)."""
        assigned = self.ids.next_ids(len(events)) if events else []
        result, records = self.store.log.append_with(
            events, assigned, joined, standing=standing, durable=durable
        )
        stored = [(index, record) for index, record in enumerate(records) if record is not None]
        if stored:
            chosen = [index for index, _ in stored]
            self._counted(
                [events[i] for i in chosen], [assigned[i] for i in chosen], [r for _, r in stored]
            )
        return result

    def _counted(
        self, events: Sequence[NewEvent], assigned: Sequence[int], records: list[bytes]
    ) -> Appended:
        """What an append stored, counted by provider (the one count of written events),
        handed to the observers."""
        ids = [
            assigned_id if event.external_id is None else _record_id(record)
            for event, record, assigned_id in zip(events, records, assigned, strict=True)
        ]
        fresh = [stored == given for stored, given in zip(ids, assigned, strict=True)]
        written = Counter(event.provider for event, new in zip(events, fresh, strict=True) if new)
        for provider, count in written.items():
            metrics.EVENTS_INGESTED.labels(provider).inc(count)
        appended = Appended(records, ids, fresh)
        for observer in self._observers:
            observer(events, appended)
        return appended


def _record_id(record: bytes) -> int:
    """A stored record's id: read from its first field, where Herald writes it."""
    if record.startswith(b'{"id":'):
        end = record.find(b",", 6)
        if end > 6 and record[6:end].isdigit():
            return int(record[6:end])
    return int(orjson.loads(record)["id"])

"""Provider batches: every usable record stored, every other one quarantined, each answered.

A streamer re-sends a batch until it is acknowledged, so one record Herald cannot use must
never refuse the batch: it goes to the organisation's quarantine (``store/quarantine.py``)
with the reasons and its bytes, and the batch is acknowledged once every usable record is
stored. A retry runs a quarantined record through the same steps again, with the catalogue
and code of the day. emnify and 1NCE usage records (``ingest/usage.py``) share the batch:
they are kept once per record id with their day's sums (``store/usage.py``), answered as
``"kind": "usage"``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from herald import metrics
from herald.auth import Principal
from herald.errors import Forbidden, Invalid
from herald.events.codec import check
from herald.events.submit import build_one, parse_json
from herald.ingest import PROVIDERS, RecordError
from herald.ingest.stacuity import TEST_MESSAGE
from herald.ingest.types import resolve_provider_type
from herald.ingest.usage import is_usage_record, parse_usage
from herald.nul import NUL_REASON, nul_field
from herald.record import NewEvent
from herald.retention import DAY_MS, retention_days, too_old, window_start_ms
from herald.services import Services
from herald.store.rejections import NewRejection, QuarantineLimits, Rejected
from herald.store.usage import MAX_DAILY
from herald.store.usage_records import UsageRecord
from herald.threads import offer_gil
from herald.timefmt import format_ms, now_ms

MAX_ERRORS = 20  # reasons kept per record
MAX_REASON = 300  # characters per reason (a provider's value may be quoted in it)
USAGE_PROVIDERS = frozenset({"emnify", "1nce"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one record: ``stored``, ``duplicate`` (of a stored event),
    ``quarantined`` or ``refused`` (unusable, and its organisation's quarantine full); ``id``
    is the event's id, or the quarantined record's (none when refused)."""

    index: int
    status: str
    id: int | None
    errors: list[dict[str, Any]] | None = None
    usage: bool = False  # a usage record: ``id`` is the usage record's, not an event's

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        key = "rejected_id" if self.status == "quarantined" else "id"
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            body[key] = self.id
        if self.usage:
            body["kind"] = "usage"
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def _errors(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"field": str(e["field"])[:MAX_REASON], "reason": str(e["reason"])[:MAX_REASON]}
        for e in entries[:MAX_ERRORS]
    ]


def build_record(
    services: Services,
    principal: Principal,
    organisation_id: int,
    provider: str,
    item: object,
    received_ms: int,
) -> NewEvent | UsageRecord | list[dict[str, Any]]:
    """One provider record as an event (or a usage record) for the store, or why it
    cannot be used."""
    holding_nul = nul_field(item)
    if holding_nul is not None:  # PostgreSQL stores no NUL: both backends refuse it
        return _errors([{"field": holding_nul, "reason": NUL_REASON}])
    if provider in USAGE_PROVIDERS and is_usage_record(item):
        return build_usage(services, organisation_id, provider, item, received_ms)
    try:
        document = PROVIDERS[provider](item)
        provider_type = resolve_provider_type(provider, document, services.catalog)
    except RecordError as exc:
        return _errors([{"field": exc.field, "reason": exc.reason}])
    document["organisation"] = {"id": organisation_id}
    event = check(document)
    if isinstance(event, list):
        return _errors([{"field": e.field, "reason": e.reason} for e in event])
    result = build_one(
        services,
        principal,
        event,
        received_ms=received_ms,
        provider=provider,
        platform=True,
        provider_type=provider_type,
    )
    if isinstance(result, list):
        return _errors([{"field": e.field, "reason": e.reason} for e in result])
    return result


def build_usage(
    services: Services, organisation_id: int, provider: str, item: object, received_ms: int
) -> UsageRecord | list[dict[str, Any]]:
    """One usage record for the store, or why not: unreadable, or outside the
    organisation's retention window (as events are)."""
    try:
        usage = parse_usage(item)
    except RecordError as exc:
        return _errors([{"field": exc.field, "reason": exc.reason}])
    organisation = services.organisation(organisation_id)
    days = retention_days(
        organisation.retention_days if organisation else None, services.settings.retention_days
    )
    if usage.end_ms < window_start_ms(received_ms, days):
        return _errors([{"field": "end_timestamp", "reason": too_old(days)}])
    skew_ms = int(services.settings.max_future_skew_seconds * 1000)
    if usage.end_ms > received_ms + skew_ms:
        return _errors([{"field": "end_timestamp", "reason": "in the future"}])
    try:
        raw = record_bytes(item)
    except orjson.JSONEncodeError:  # nested past what can be written: refused as events are
        return _errors([{"field": "body", "reason": "nests too deep to be kept"}])
    return usage.stored(
        id=services.ids.next_id(),
        organisation_id=organisation_id,
        provider=provider,
        received_ms=received_ms,
        raw=raw,
    )


def record_bytes(item: object) -> bytes:
    """A record's bytes as kept in quarantine (and hashed to keep it once)."""
    return orjson.dumps(item)


async def _store(
    services: Services, organisation: int | None, events: list[NewEvent]
) -> list[tuple[int, bool]]:
    """Append in one transaction (on the write threads, in ``organisation``'s turn); per
    event its id and whether it is new (not a duplicate)."""
    appended = await services.write(organisation, services.writer.append, events)
    return list(zip(appended.ids, appended.fresh, strict=True))


async def _store_usage(
    services: Services, organisation: int | None, usage: list[tuple[int, UsageRecord]]
) -> tuple[list[Outcome], list[tuple[int, list[dict[str, Any]]]]]:
    """Keep the usage records in one transaction; the outcomes of those kept, and the
    others with why: a sum of their day would pass what is kept exactly."""
    if not usage:
        return [], []
    records = [record for _, record in usage]
    kept = await services.write(organisation, services.store.usage.save, records)
    outcomes: list[Outcome] = []
    over: list[tuple[int, list[dict[str, Any]]]] = []
    for (index, record), saved in zip(usage, kept, strict=True):
        if saved is None:
            over.append((index, [_sum_full(record)]))
        else:
            status = "stored" if saved[1] else "duplicate"
            outcomes.append(Outcome(index, status, saved[0], usage=True))
    return outcomes, over


def _sum_full(record: UsageRecord) -> dict[str, Any]:
    """Why a usage record was not kept: a sum of its endpoint's day would pass the bound."""
    return {
        "field": "volume",
        "reason": f"would take endpoint {record.endpoint_id}'s usage of "
        f"{format_ms(record.day * DAY_MS)[:10]} past what Herald sums exactly (at most "
        f"{Decimal(MAX_DAILY).scaleb(-6)} MB of data and {MAX_DAILY} SMS per endpoint and "
        "UTC day): not kept",
    }


@dataclass(frozen=True, slots=True)
class SortedRecords:
    """A provider batch's records, each as what the store keeps of it, with its index."""

    usable: list[tuple[int, NewEvent]]
    usage: list[tuple[int, UsageRecord]]
    unusable: list[tuple[int, NewRejection]]


def sort_records(
    services: Services,
    principal: Principal,
    organisation_id: int,
    provider: str,
    items: list[Any],
    received_ms: int,
) -> SortedRecords:
    """Build every record of a batch: an event, a usage record, or a quarantined record with
    its reasons. Blocking CPU work, for ``Services.compute``."""
    found = SortedRecords([], [], [])
    for index, item in enumerate(items):
        offer_gil(index)
        result = build_record(services, principal, organisation_id, provider, item, received_ms)
        if isinstance(result, NewEvent):
            found.usable.append((index, result))
            continue
        if isinstance(result, UsageRecord):
            found.usage.append((index, result))
            continue
        try:
            raw = record_bytes(item)
        except orjson.JSONEncodeError:  # nested past what can be written (255 levels)
            reason = "nests too deep to be kept"
            raise Invalid(
                f"[{index}] body: {reason}",
                [{"field": "body", "reason": reason, "index": index}],
                title="Invalid record",
            ) from None
        limit = services.settings.quarantine_record_bytes
        found.unusable.append(
            (index, to_quarantine(organisation_id, provider, received_ms, result, raw, limit))
        )
    return found


def to_quarantine(
    organisation_id: int,
    provider: str,
    received_ms: int,
    errors: list[dict[str, Any]],
    raw: bytes,
    max_bytes: int,
) -> NewRejection:
    """What the quarantine keeps of an unusable record: all of it, or, when it is larger
    than ``max_bytes``, its first bytes (whole characters) with its size, its sha256 and a
    reason that says so (such a record cannot be ingested again from the quarantine)."""
    digest = hashlib.sha256(raw).hexdigest()  # of the whole record: a re-sent one is known
    if len(raw) <= max_bytes:
        return NewRejection(organisation_id, provider, digest, received_ms, errors, raw)
    prefix = raw[:max_bytes].decode("utf-8", "ignore").encode()
    reason = (
        f"{len(raw)} bytes, over the {max_bytes} a quarantined record keeps: only its first "
        f"{len(prefix)} bytes are kept, so it cannot be retried (the provider must send it again)"
    )
    truncated = [*errors, {"field": "record", "reason": reason}]
    return NewRejection(organisation_id, provider, digest, received_ms, truncated, prefix, len(raw))


def _full(services: Services) -> dict[str, Any]:
    """The reason a record was not quarantined: its organisation's quarantine is full."""
    settings = services.settings
    return {
        "field": "quarantine",
        "reason": f"this organisation's quarantine is full (at most {settings.quarantine_records} "
        f"records and {settings.quarantine_bytes} bytes): the record was not kept; retry or "
        "discard quarantined records (/ingest/rejected), then send it again",
    }


async def organisation_for(services: Services, principal: Principal, named: int | None) -> int:
    """The organisation records are written for: a tenant's token's own, the one an
    internal token names."""
    if principal.internal:
        if named is None:
            raise Invalid.at("organisation", "an internal token names the organisation")
        if await services.run(services.organisation, named) is None:
            raise Invalid.at("organisation", "unknown organisation")
        return named
    if principal.organisation_id is None or (
        named is not None and named != principal.organisation_id
    ):
        raise Forbidden("an ingest token writes only for its own organisation")
    return principal.organisation_id


async def ingest_body(
    services: Services, principal: Principal, organisation_id: int, provider: str, body: bytes
) -> list[Outcome]:
    """A provider's request body (one record, or an array of them) ingested record by
    record (``ingest_batch``); ``Malformed`` or ``Invalid`` only for a body that is not a
    batch of records at all. Stacuity's test message stores nothing."""
    if not principal.internal:
        services.budgets.check_waited(organisation_id)
    document = await services.compute(parse_json, body, organisation=organisation_id)
    if provider == "stacuity" and document == TEST_MESSAGE:
        return []
    items = _records(document, services.settings.ingest_max_batch_records)
    return await ingest_batch(services, principal, organisation_id, provider, items, len(body))


def _records(document: Any, max_records: int) -> list[Any]:
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise Invalid.at("body", "must be a record (an object) or an array of records")
    if len(document) > max_records:
        raise Invalid.at("body", f"a batch holds at most {max_records} records")
    return document


async def ingest_batch(
    services: Services,
    principal: Principal,
    organisation_id: int,
    provider: str,
    items: list[Any],
    body_bytes: int = 0,
) -> list[Outcome]:
    """Store the usable records of a batch and quarantine the rest; one outcome per record.
    The batch is first taken from the organisation's event budget (its records, and
    ``body_bytes``): over it, nothing is stored and the error says when to retry."""

    def charged_sort() -> SortedRecords:
        services.charge(principal, organisation_id, len(items), body_bytes)
        return sort_records(services, principal, organisation_id, provider, items, now_ms())

    records = await services.compute(charged_sort, organisation=organisation_id)
    outcomes: list[Outcome] = []
    if records.usable:
        kept = await _store(services, organisation_id, [event for _, event in records.usable])
        for (index, _), (event_id, new) in zip(records.usable, kept, strict=True):
            outcomes.append(Outcome(index, "stored" if new else "duplicate", event_id))
    kept_usage, over = await _store_usage(services, organisation_id, records.usage)
    outcomes += kept_usage
    usage_of = dict(records.usage)
    for index, errors in over:  # quarantined with the reason, as an unusable record is
        record = usage_of[index]
        limit = services.settings.quarantine_record_bytes
        rejection = to_quarantine(
            organisation_id, provider, record.received_ms, errors, record.record, limit
        )
        records.unusable.append((index, rejection))
    if records.unusable:
        unusable = [r for _, r in records.unusable]
        settings = services.settings
        limits = QuarantineLimits(settings.quarantine_records, settings.quarantine_bytes)
        rows = await services.write(
            organisation_id, services.store.quarantine.keep, unusable, limits
        )
        for (index, rejection), row in zip(records.unusable, rows, strict=True):
            if row is None:
                outcomes.append(
                    Outcome(index, "refused", None, [*rejection.errors, _full(services)])
                )
            else:
                outcomes.append(Outcome(index, "quarantined", row[0], rejection.errors))
        metrics.INGEST_QUARANTINED.labels(provider).inc(sum(1 for r in rows if r and r[1]))
        if None in rows:
            metrics.INGEST_QUARANTINE_FULL.labels(provider).inc(rows.count(None))
    return sorted(outcomes, key=lambda outcome: outcome.index)


async def retry_rejected(
    services: Services, principal: Principal, records: list[Rejected]
) -> list[Outcome]:
    """Run quarantined records through ingest again: the usable ones are stored and leave
    the quarantine, the others keep their place with the new reasons. A tenant's retry is
    taken from its organisation's event budget first (the records and their bytes)."""
    at = now_ms()
    organisation = principal.organisation_id
    usable: list[tuple[int, NewEvent]] = []
    usage: list[tuple[int, UsageRecord]] = []
    refusals: list[tuple[int, list[dict[str, Any]]]] = []

    def build() -> list[NewEvent | UsageRecord | list[dict[str, Any]]]:
        if organisation is not None:
            size = sum(len(r.record) for r in records)
            services.charge(principal, organisation, len(records), size)
        return [
            build_record(
                services, principal, r.organisation_id, r.provider, orjson.loads(r.record), at
            )
            if not r.truncated
            else _not_retryable(r)
            for r in records
        ]

    for index, result in enumerate(await services.compute(build, organisation=organisation)):
        if isinstance(result, NewEvent):
            usable.append((index, result))
        elif isinstance(result, UsageRecord):
            usage.append((index, result))
        else:
            refusals.append((index, result))
    outcomes = [
        Outcome(index, "quarantined", records[index].id, errors) for index, errors in refusals
    ]
    if usable:
        kept = await _store(services, organisation, [event for _, event in usable])
        await services.run(services.store.quarantine.release, [records[i].id for i, _ in usable])
        for (index, _), (event_id, new) in zip(usable, kept, strict=True):
            outcomes.append(Outcome(index, "stored" if new else "duplicate", event_id))
    if usage:
        kept_usage, over = await _store_usage(services, organisation, usage)
        outcomes += kept_usage
        outcomes += [Outcome(i, "quarantined", records[i].id, errors) for i, errors in over]
        refusals += over  # they stay, with the reason
        stored = {outcome.index for outcome in kept_usage}
        released = [records[i].id for i, _ in usage if i in stored]
        await services.run(services.store.quarantine.release, released)
    if refusals:
        again = [(records[i].id, errors) for i, errors in refusals if not records[i].truncated]
        await services.run(services.store.quarantine.refuse_again, again, at)
    return sorted(outcomes, key=lambda outcome: outcome.index)


def _not_retryable(record: Rejected) -> list[dict[str, Any]]:
    reason = (
        f"only the first {len(record.record)} of its {record.size} bytes were kept: it cannot "
        "be ingested again (discard it; the provider must send it again)"
    )
    return [{"field": "record", "reason": reason}]

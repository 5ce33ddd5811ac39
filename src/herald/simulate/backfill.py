"""Write simulated history straight through the store, in batches, with a progress bar.

Each event takes the real write path's checks (``EventIn`` and ``build_event`` against the
catalogue) but skips HTTP: a million events take minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from herald.events.codec import Checked, OrganisationRef, check
from herald.events.writer import EventWriter
from herald.ids import IdGenerator
from herald.organisations.types import Organisation
from herald.record import NewEvent
from herald.retention import retention_days
from herald.simulate.engine import World
from herald.simulate.usage import save_usage
from herald.store import Store
from herald.timefmt import now_ms

BATCH = 5000


class SimulationError(ValueError):
    """A simulated event the write path refused: a bug in the simulator."""


def ensure_organisations(store: Store, world: World) -> dict[int, OrganisationRef]:
    """The world's organisations as stored, created where absent."""
    return {o.id: OrganisationRef(id=o.id, name=o.name) for o in _organisations(store, world)}


def _organisations(store: Store, world: World) -> list[Organisation]:
    found: list[Organisation] = []
    for organisation in world.organisations:
        stored = store.organisations.get(organisation.id)
        if stored is None:
            stored = store.organisations.create(organisation.name, organisation.id)
        found.append(stored)
    return found


def _check_retention(store: Store, organisations: list[Organisation], days: float) -> None:
    """Refuse a history longer than an organisation keeps (its events would be refused)."""
    for organisation in organisations:
        kept = retention_days(organisation.retention_days, store.maintenance.default_retention_days)
        if days > kept:
            raise SimulationError(
                f"{days:g} days of history: longer than the retention of organisation "
                f"{organisation.id} ({kept:g} days; events older are refused)"
            )


def to_new_events(
    documents: Iterable[dict[str, Any]],
    organisations: dict[int, OrganisationRef],
    writer: EventWriter,
    received_ms: int,
) -> list[NewEvent]:
    """Simulated documents checked and completed as the API would; raises if one is refused."""
    built: list[NewEvent] = []
    for document in documents:
        event = check(document)
        if not isinstance(event, Checked) or event.event.organisation is None:
            raise SimulationError(f"simulated event refused ({event}): {document}")
        result = writer.build(
            event,
            organisation=organisations[event.event.organisation.id],
            received_ms=received_ms,
            internal=True,
            provider="simulator",
        )
        if isinstance(result, list):
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in result)
            raise SimulationError(f"simulated event refused ({reasons}): {document}")
        built.append(result)
    return built


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(islice(events, size)):
        yield batch


def backfill(
    store: Store,
    world: World,
    days: float,
    *,
    limit: int | None = None,
    batch_size: int = BATCH,
    show_progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    ids: IdGenerator | None = None,
) -> int:
    """Write ``days`` of history ending now (at most ``limit`` events); return how many.

    ``ids``: the process's generator if it has one (one per node id), else one is leased.
    """
    stored = _organisations(store, world)
    _check_retention(store, stored, days)
    organisations = {o.id: OrganisationRef(id=o.id, name=o.name) for o in stored}
    ids = ids or IdGenerator(store.nodes.lease())
    now = now_ms()
    start = now - int(days * 86_400_000)  # within the retention window (checked above)
    end = max(start, now - 60_000)  # a happening's last events may run up to a minute later
    writer = EventWriter(store, ids)
    events = world.events(start, end)
    if limit is not None:
        events = islice(events, limit)
    written = 0
    columns = [
        TextColumn("[bold]backfill[/]"),
        BarColumn(),
        MofNCompleteColumn() if limit else TextColumn("{task.percentage:>3.0f}% of the days"),
        TextColumn("· {task.fields[events]:,} events · {task.fields[rate]:,.0f}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not show_progress) as progress:
        task = progress.add_task("backfill", total=limit or (end - start), events=0, rate=0.0)
        for batch in _batches(events, batch_size):
            built = to_new_events(batch, organisations, writer, now_ms())
            writer.append(built)
            save_usage(store, ids, world.take_usage(), now_ms())  # a World(usage=True)'s
            written += len(built)
            elapsed = progress.tasks[0].elapsed or 1e-9
            done = written if limit else built[-1].timestamp_ms - start
            progress.update(task, completed=done, events=written, rate=written / elapsed)
            if on_batch is not None:
                on_batch(written)
        progress.update(task, completed=limit or (end - start))
    return written

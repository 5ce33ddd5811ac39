"""``herald db migrate``, ``status``, ``train-dictionary``, ``backfill-fields``: the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

from herald.cli.common import DatabaseOption, console, fail, missing_database, settings_for

if TYPE_CHECKING:
    from herald.store import Store
    from herald.store.migrator import SchemaStatus

TRAINING_SAMPLES = 5_000  # herald.store.records.TRAINING_SAMPLES (a test checks): not imported
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


def redacted(url: str) -> str:
    """The URL without its password, fit for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def _open(database: str | None, create: bool) -> Iterator[tuple[Store, str]]:
    """The store, its schema as it is (``create``: a SQLite file that is absent is made)."""
    from herald.store import StoreError, open_store

    settings = settings_for(database)
    url = settings.database_url
    missing = None if create else missing_database(url)
    if missing is not None:
        fail(missing)
    try:
        store = open_store(
            url,
            sqlite_synchronous=settings.sqlite_synchronous,
            migrate=False,
            retention_days=settings.retention_days,
        )
    except (ValueError, StoreError) as exc:
        fail(f"cannot open database {redacted(url)}: {exc}")
    try:
        yield store, redacted(url)
    finally:
        store.close()


def _status(store: Store) -> SchemaStatus:
    return store.maintenance.schema_status()


@db_app.command("migrate")
def migrate(database: DatabaseOption = None) -> None:
    """Bring the schema up to date (safe to run from several machines at once), then compact
    the rows written before: records stored before 0014 are compressed, and on SQLite the
    columns 0016 leaves empty are emptied (interrupted, the next run goes on where it stopped)."""
    from herald.store import StoreError

    with _open(database, create=True) as (store, url):
        before = _status(store)
        try:
            store.maintenance.migrate()
            compacted = _compact(store)
            backfilled = _backfill(store)
        except StoreError as exc:
            fail(f"migration failed: {exc}")
        after = _status(store)
    applied = [m.name for m in before.pending]
    console.print(f"{url}: schema version {after.current}", highlight=False, markup=False)
    console.print(f"applied: {', '.join(applied)}" if applied else "already up to date")
    if compacted:
        console.print(f"compacted {compacted:,} stored records", highlight=False)
    if backfilled:
        console.print(f"backfilled {backfilled:,} stored events", highlight=False)


@db_app.command("backfill-fields")
def backfill_fields(database: DatabaseOption = None) -> None:
    """Fill the filter columns added after older events were stored (rat, and Stacuity's
    account id as provider_organisation) from their records, on PostgreSQL (SQLite reads
    them from the records). Interrupted, even by kill -9, the next run goes on where it
    stopped; `herald db migrate` runs it too."""
    from herald.store import StoreError

    with _open(database, create=False) as (store, url):
        if _status(store).pending:
            fail("the schema is not up to date: run `herald db migrate` (it backfills too)")
        try:
            backfilled = _backfill(store)
        except StoreError as exc:
            fail(f"backfill failed: {exc}")
    console.print(f"{url}: backfilled {backfilled:,} stored events", highlight=False, markup=False)


def _compact(store: Store) -> int:
    """Compact the rows written before the compact store, with a progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = store.maintenance.uncompacted_events()
    if not total:
        return 0
    columns = [
        TextColumn("[bold]compacting records[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("compact", total=total)
        return store.maintenance.compact_records(lambda done: progress.advance(task, done))


def _backfill(store: Store) -> int:
    """Backfill the filter columns of older events (``store.maintenance.backfill_fields``), with
    a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    total = store.maintenance.unbackfilled_events()
    if not total:
        store.maintenance.backfill_fields()  # marks it done
        return 0
    columns = [TextColumn("[bold]backfilling fields[/]"), BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("backfill", total=total)
        return store.maintenance.backfill_fields(lambda done: progress.advance(task, done))


@db_app.command("train-dictionary")
def train_dictionary(
    database: DatabaseOption = None,
    samples: Annotated[
        int, typer.Option(min=100, max=100_000, help="How many of the newest events to train on.")
    ] = TRAINING_SAMPLES,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the dictionary to this file instead of adding it to the store."),
    ] = None,
) -> None:
    """Train a compression dictionary on the store's newest events and add it: each Herald
    process writes with it within a minute (older rows keep theirs). The maintenance loop
    does this by itself, hourly, when a new dictionary packs the newest records better."""
    from herald.store import StoreError
    from herald.store.records import train

    with _open(database, create=False) as (store, url):
        try:
            if output is not None:
                data = train(store.maintenance.sample_records(samples))
                output.write_bytes(data)
                console.print(f"wrote a {len(data):,}-byte dictionary to {output}", markup=False)
                return
            dictionary_id, data = store.maintenance.train_dictionary(samples)
        except StoreError as exc:
            fail(f"training a dictionary failed: {exc}")
    console.print(
        f"{url}: dictionary {dictionary_id} ({len(data):,} bytes) added; Herald writes with "
        "it within a minute",
        highlight=False,
        markup=False,
    )


@db_app.command("status")
def status(database: DatabaseOption = None) -> None:
    """Show the schema version and the migrations not applied yet (changes nothing)."""
    from herald.store.migrator import migrations

    url = settings_for(database).database_url
    if missing_database(url) is not None and url.startswith("sqlite:"):
        pending = ", ".join(m.name for m in migrations("sqlite"))
        console.print(
            f"{redacted(url)}: no database yet, schema version 0", highlight=False, markup=False
        )
        console.print(f"pending: {pending}", highlight=False)
        console.print("run `herald db migrate` (or start `herald serve`) to create it")
        return
    with _open(database, create=False) as (store, url):
        schema = _status(store)
        partitions = store.maintenance.partitions() if schema.applied else []
    console.print(f"{url}: schema version {schema.current}", highlight=False, markup=False)
    if schema.pending:
        console.print("pending: " + ", ".join(m.name for m in schema.pending), highlight=False)
        console.print("run `herald db migrate` (or start `herald serve`) to apply them")
    else:
        console.print("up to date")
    if partitions:
        console.print(
            f"event partitions: {len(partitions)}, {partitions[0]} … {partitions[-1]}",
            highlight=False,
        )


@db_app.command("rebuild-device-state")
def rebuild_device_state(database: DatabaseOption = None) -> None:
    """Forget the device states and fold the whole log into them again."""
    from herald.devices.projector import DeviceProjector
    from herald.store import StoreError

    with _open(database, create=False) as (store, url):
        try:
            store.maintenance.migrate()  # the device state tables come with a migration
            store.devices.reset()
            folded = DeviceProjector(store).catch_up()
        except StoreError as exc:
            fail(f"rebuilding the device states failed: {exc}")
    console.print(
        f"{url}: device states rebuilt from {folded} events", highlight=False, markup=False
    )

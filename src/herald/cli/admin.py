"""``herald org`` and ``herald token``: administration straight on the database."""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from rich.text import Text

from herald.cli.common import DatabaseOption, audit_for, console, fail, plain, store_for
from herald.permissions import PERMISSIONS
from herald.retention import MAX_RETENTION_DAYS

MAX_ORGANISATION_ID = 2**53  # what an event's organisation.id may hold
MAX_ID = 2**63 - 1  # the databases' integers are 64-bit
MAX_NAME_LENGTH = 256  # what an event's organisation.name may hold

org_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
RetentionOption = Annotated[
    int | None,
    typer.Option(
        "--retention-days",
        min=1,
        max=MAX_RETENTION_DAYS,
        help="Days each event is kept after its own timestamp; older events are refused "
        "(default: HERALD_RETENTION_DAYS, 30).",
        show_default=False,
    ),
]
token_app = typer.Typer(help="Application tokens.", no_args_is_help=True)


class Switch(enum.StrEnum):
    ON = "on"
    OFF = "off"


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organisation's name.")],
    organisation_id: Annotated[
        int | None,
        typer.Option(
            "--id", min=1, max=MAX_ORGANISATION_ID, help="Choose the id (default: next free)."
        ),
    ] = None,
    retention_days: RetentionOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create an organisation; its id is the last line printed. Names are unique."""
    from herald.store import Conflict

    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        fail(f"an organisation needs a name of 1 to {MAX_NAME_LENGTH} characters")
    store = store_for(database)
    try:
        same = [o.id for o in store.organisations.all() if o.name.casefold() == name.casefold()]
        if same:
            fail(f"an organisation named {name!r} exists already (id {same[0]}); choose another")
        organisation = store.organisations.create(name, organisation_id, retention_days)
    except Conflict:
        fail(f"organisation {organisation_id} exists already")
    finally:
        store.close()
    console.print(Text.assemble("Created organisation ", (organisation.name, "bold")))
    console.print(str(organisation.id), highlight=False)


@org_app.command("list")
def org_list(database: DatabaseOption = None) -> None:
    """List organisations."""
    from rich.table import Table

    from herald.timefmt import format_ms

    store = store_for(database)
    table = Table("id", "name", "created", "retention (days)")
    for organisation in store.organisations.all():
        table.add_row(
            str(organisation.id),
            plain(organisation.name),
            format_ms(organisation.created_ms),
            _retention(organisation.retention_days, store.maintenance.default_retention_days),
        )
    store.close()
    console.print(table)


@org_app.command("retention")
def org_retention(
    organisation_id: Annotated[int, typer.Argument(help="The organisation's id.", min=1)],
    days: Annotated[
        str,
        typer.Argument(
            help=f"Days (1-{MAX_RETENTION_DAYS}) each event is kept after its timestamp, "
            "or 'default' for the server's HERALD_RETENTION_DAYS.",
            show_default=False,
        ),
    ],
    database: DatabaseOption = None,
) -> None:
    """Change how long an organisation's events are kept (and how old they may be written).

    A shorter retention deletes the older events at the next purge.
    """
    from herald.store import NotFound

    retention: int | None = None
    if days != "default":
        if not days.isdigit() or not 1 <= int(days) <= MAX_RETENTION_DAYS:
            fail(f"days must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or default")
        retention = int(days)
    store = store_for(database)
    try:
        organisation = store.organisations.set_retention(organisation_id, retention)
    except NotFound:
        fail(f"no organisation {organisation_id}")
    finally:
        store.close()
    kept = _retention(organisation.retention_days, store.maintenance.default_retention_days)
    console.print(f"Organisation {organisation.id} keeps events {kept} days", highlight=False)


@org_app.command("device-events")
def org_device_events(
    organisation_id: Annotated[int, typer.Argument(help="The organisation's id.", min=1)],
    switch: Annotated[
        Switch,
        typer.Argument(help="on: write its endpoints' status changes as events; off: not."),
    ],
    database: DatabaseOption = None,
) -> None:
    """Write an organisation's endpoint status changes as events (types 2100-2103: attached,
    online, offline, blocked), which handlers can stream, from now on."""
    from herald.store import NotFound

    store = store_for(database)
    try:
        organisation = store.organisations.set_device_events(organisation_id, switch is Switch.ON)
    except NotFound:
        fail(f"no organisation {organisation_id}")
    finally:
        store.close()
    written = "writes" if organisation.device_events else "does not write"
    console.print(
        f"Organisation {organisation.id} {written} status changes as events", highlight=False
    )


MAX_EVENTS_PER_SECOND = 1_000_000
MAX_BURST = 10_000_000
MAX_BYTES_PER_DAY = 2**50  # a PiB


def _limit(value: str, name: str, top: int) -> float | None:
    """A limit option's value: the number (above 0, at most ``top``), or None for 'default'."""
    if value == "default":
        return None
    try:
        number = float(value)
    except ValueError:
        number = 0
    if not 0 < number <= top:
        fail(f"{name} must be a number above 0 and at most {top}, or default")
    return number


@org_app.command("limits")
def org_limits(
    organisation_id: Annotated[int, typer.Argument(help="The organisation's id.", min=1)],
    events_per_second: Annotated[
        str | None,
        typer.Option(
            "--events-per-second",
            help="Events it may write per second, on average ('default': "
            "HERALD_EVENT_BUDGET_PER_SECOND).",
            show_default=False,
        ),
    ] = None,
    burst: Annotated[
        str | None,
        typer.Option(
            "--burst",
            help="Events it may write at once, its largest batch ('default': "
            "HERALD_EVENT_BUDGET_BURST).",
            show_default=False,
        ),
    ] = None,
    bytes_per_day: Annotated[
        str | None,
        typer.Option(
            "--bytes-per-day",
            help="Request body bytes it may write per UTC day ('default': "
            "HERALD_EVENT_BUDGET_BYTES_PER_DAY).",
            show_default=False,
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Show or set an organisation's event budget (each server applies it within seconds).

    Writes over it answer 429 with Retry-After; a batch of more events than the burst,
    422. Without options, print the organisation's budget.
    """
    from herald.config import Settings
    from herald.store import NotFound

    store = store_for(database)
    try:
        organisation = store.organisations.get(organisation_id)
        if organisation is None:
            fail(f"no organisation {organisation_id}")
        rate: float | None = organisation.events_per_second
        size: float | None = organisation.event_burst
        day: float | None = organisation.bytes_per_day
        if events_per_second is not None:
            rate = _limit(events_per_second, "--events-per-second", MAX_EVENTS_PER_SECOND)
        if burst is not None:
            size = _limit(burst, "--burst", MAX_BURST)
        if bytes_per_day is not None:
            day = _limit(bytes_per_day, "--bytes-per-day", MAX_BYTES_PER_DAY)
        if (events_per_second, burst, bytes_per_day) != (None, None, None):
            organisation = store.organisations.set_event_budget(
                organisation_id, rate, _whole(size), _whole(day)
            )
    except NotFound:
        fail(f"no organisation {organisation_id}")
    finally:
        store.close()
    settings = Settings()
    console.print(
        f"Organisation {organisation.id} may write "
        f"{_own(organisation.events_per_second, settings.event_budget_per_second)} events per "
        f"second, {_own(organisation.event_burst, settings.event_budget_burst)} at once "
        f"(burst), {_own(organisation.bytes_per_day, settings.event_budget_bytes_per_day)} "
        "bytes per day",
        highlight=False,
    )


def _whole(value: float | None) -> int | None:
    return None if value is None else max(1, int(value))


def _own(value: float | None, default: float) -> str:
    return f"{value:g}" if value is not None else f"{default:g} (default)"


def _retention(own: int | None, default: float) -> str:
    return str(own) if own is not None else f"{default:g} (default)"


@token_app.command("create")
def token_create(
    org: Annotated[
        int | None,
        typer.Option(
            "--org", min=1, max=MAX_ORGANISATION_ID, help="Organisation the token acts for."
        ),
    ] = None,
    permission: Annotated[
        list[str] | None,
        typer.Option("--permission", "-p", help=f"Repeatable: {', '.join(sorted(PERMISSIONS))}."),
    ] = None,
    internal: Annotated[
        bool,
        typer.Option("--internal", help="A platform token: every permission, every organisation."),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
    database: DatabaseOption = None,
) -> None:
    """Create an application token; the secret is printed once, as the last line."""
    from herald.auth import issue_token

    if internal == (org is not None):
        fail("give either --org ID (with --permission) or --internal")
    if not internal and not permission:
        fail("a tenant token needs at least one --permission")
    store = store_for(database)
    try:
        if org is not None and store.organisations.get(org) is None:
            fail(f"no organisation {org}")
        secret, token = issue_token(
            store,
            organisation_id=org,
            permissions=permission or [],
            internal=internal,
            name=name,
            audit=audit_for(store, database),
        )
    except ValueError as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"Token {token.id} created; keep it now, it is not shown again:")
    console.print(secret, highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(
    org: Annotated[
        int | None,
        typer.Option(
            "--org", min=1, max=MAX_ORGANISATION_ID, help="Only this organisation's tokens."
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """List tokens (never their secrets)."""
    from rich.table import Table

    from herald.timefmt import format_ms

    store = store_for(database)
    table = Table("id", "org", "name", "prefix", "permissions", "created", "revoked")
    for token in store.organisations.tokens(org):
        table.add_row(
            str(token.id),
            "internal" if token.internal else str(token.organisation_id),
            plain(token.name),
            token.prefix + "…",
            "*" if token.internal else " ".join(token.permissions),
            format_ms(token.created_ms),
            format_ms(token.revoked_ms) if token.revoked_ms else "",
        )
    store.close()
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[
        int, typer.Argument(min=1, max=MAX_ID, help="The token's id (see token list).")
    ],
    database: DatabaseOption = None,
) -> None:
    """Revoke a token: every call with it, or with a JWT made from it, is refused."""
    from herald.auth import revoke_token
    from herald.store import NotFound

    store = store_for(database)
    try:
        revoke_token(store, token_id, audit_for(store, database))
    except NotFound:
        fail(f"no token {token_id}")
    finally:
        store.close()
    console.print(f"Token {token_id} revoked.")


ingest_app = typer.Typer(
    help="Ingest credentials: how a provider's data streamer authenticates to /ingest.",
    no_args_is_help=True,
)


class Provider(enum.StrEnum):
    ONECE = "1nce"
    EMNIFY = "emnify"
    STACUITY = "stacuity"


BASIC_USER = "herald"  # any user name is accepted; this one is what the set-up prints


@ingest_app.command("create")
def ingest_credential_create(
    provider: Annotated[
        Provider, typer.Option("--provider", help="The provider whose records it may post.")
    ],
    org: Annotated[
        int,
        typer.Option(
            "--org", min=1, max=MAX_ORGANISATION_ID, help="Organisation the records belong to."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="A label for the credential.")] = "",
    database: DatabaseOption = None,
) -> None:
    """A token holding only ingest:PROVIDER, printed once as the provider's set-up takes it."""
    from herald.auth import issue_token

    store = store_for(database)
    try:
        if store.organisations.get(org) is None:
            fail(f"no organisation {org}")
        secret, token = issue_token(
            store,
            organisation_id=org,
            permissions=[f"ingest:{provider.value}"],
            name=name or f"{provider.value} data streamer",
            audit=audit_for(store, database),
        )
    finally:
        store.close()
    path = f"/api/v1/ingest/{provider.value}"
    console.print(
        f"Ingest credential (token {token.id}, ingest:{provider.value}, organisation {org}) "
        "created; keep it now, it is not shown again.",
        highlight=False,
    )
    if provider is Provider.ONECE:
        console.print(
            f"1NCE portal, Data Streamer, HTTP target: URL https://<herald host>{path}, "
            f"Basic authentication with user name {BASIC_USER!r} and this password:",
            highlight=False,
        )
    elif provider is Provider.EMNIFY:
        console.print(
            f"emnify API callback: URL https://<herald host>{path}, API secret:",
            highlight=False,
        )
    else:
        console.print(
            f"Stacuity event handler: URL https://<herald host>{path}, header "
            "Authorization: Bearer followed by:",
            highlight=False,
        )
    console.print(secret, highlight=False, soft_wrap=True)

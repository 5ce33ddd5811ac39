"""``herald simulate``: a fleet living through time, as history or as a live stream."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from herald.cli.common import DatabaseOption, api_url, console, fail, store_for


def simulate(
    orgs: Annotated[int, typer.Option("--orgs", min=1, help="Organisations (ids 1..M).")] = 3,
    devices: Annotated[int, typer.Option("--devices", min=1, help="SIMs/endpoints.")] = 300,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same history.")] = 1,
    days: Annotated[
        float | None,
        typer.Option("--backfill", min=0.001, help="Write DAYS of history through the store."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many events.")
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="Send events to a running server.")] = False,
    rate: Annotated[float, typer.Option("--rate", min=0.01, help="Live events per second.")] = 10,
    database: DatabaseOption = None,
    url: Annotated[str | None, typer.Option("--url", help="Herald URL (env HERALD_URL).")] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="HERALD_TOKEN", help="An internal token (live mode)."),
    ] = None,
) -> None:
    """Simulate N devices in M organisations: --backfill DAYS or --live --rate R."""
    import httpx

    from herald.simulate import World
    from herald.simulate.backfill import SimulationError, backfill
    from herald.simulate.live import ApiSender, paced, restamped

    if (days is None) == (not live):
        fail("choose one: --backfill DAYS or --live")
    world = World(orgs, devices, seed, usage=True)
    if days is not None:
        store = store_for(database, create=True)
        try:
            written = backfill(store, world, days, limit=limit)
        except SimulationError as exc:
            fail(str(exc))
        finally:
            store.close()
        console.print(f"Wrote {written:,} events of {devices:,} devices in {orgs} organisations.")
        return
    if not token:
        fail("live mode needs an internal token: --token or HERALD_TOKEN")
    sender = ApiSender(url or api_url(), token)
    console.print(f"Sending {rate:g} events/s to {url or api_url()} (Ctrl-C stops)", markup=False)
    sent = 0

    def send(batch: list[dict[str, Any]]) -> None:
        sender(batch)
        sender.usage(world.take_usage())

    try:
        sent = paced(restamped(world), rate, send, limit=limit)
    except KeyboardInterrupt:
        pass
    except httpx.HTTPError as exc:
        fail(f"the server refused the stream: {exc}")
    finally:
        sender.close()
    if sent:
        console.print(f"Sent {sent:,} events.")

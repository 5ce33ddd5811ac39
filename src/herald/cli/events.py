"""``herald events``: list and follow events through the API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from herald.cli.common import (
    TokenOption,
    UrlOption,
    api_client,
    api_failed,
    console,
    errors,
    fail,
    plain,
)

if TYPE_CHECKING:
    import httpx
    from rich.table import Table

events_app = typer.Typer(help="Read events through the API.", no_args_is_help=True)

QueryOption = Annotated[
    str | None,
    typer.Option(
        "--query", "-q", help="Filter, e.g. type:3|5,severity:1,from:2026-11-01", show_default=False
    ),
]


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> httpx.Response:
    import httpx

    try:
        response = client.get(path, params={k: v for k, v in params.items() if v is not None})
    except httpx.HTTPError as exc:
        fail(f"cannot reach Herald at {client.base_url}: {exc}")
    if response.status_code >= 400:
        api_failed(response)
    return response


def _table(events: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table("id", "timestamp", "type", "severity", "source", "endpoint", "description")
    for event in events:
        endpoint = event.get("endpoint") or {}
        table.add_row(
            str(event["id"]),
            event["timestamp"],
            plain(f"{event['event_type']['id']} {event['event_type']['description']}"),
            plain(event["event_severity"]["description"]),
            plain(event["event_source"]["description"]),
            plain(endpoint.get("name") or endpoint.get("id") or ""),
            plain(event.get("description", "")),
        )
    return table


@events_app.command("list")
def list_events(
    q: QueryOption = None,
    sort: Annotated[str | None, typer.Option(help="e.g. -timestamp")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List events, newest first, with the API's filters."""
    with api_client(url, token) as client:
        response = _get(
            client, "/event", {"q": q, "sort": sort, "page": page, "per_page": per_page}
        )
    events = response.json()
    if as_json:
        console.print_json(orjson.dumps(events).decode())
        return
    console.print(_table(events))
    console.print(
        f"page {response.headers.get('X-Current-Page')} of {response.headers.get('X-Total-Pages')}"
        f" · {response.headers.get('X-Total-Count')} events",
        highlight=False,
    )


@events_app.command("tail")
def tail_events(
    q: QueryOption = None,
    last: Annotated[
        int,
        typer.Option(
            "--last",
            min=0,
            max=1000,
            help="First print the newest N events received before the stream opened.",
        ),
    ] = 10,
    interval: Annotated[
        float, typer.Option(help="Seconds before reconnecting after a drop.", min=0.1)
    ] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Follow new events as they arrive, over the live stream (Ctrl-C stops): the stream
    opens at the log's current position, the newest events before it are printed (--last),
    so none posted meanwhile is missed; a dropped connection resumes where it stopped."""
    import httpx

    with api_client(url, token) as client:
        tail = _Tail(client, q, last, as_json)
        try:
            while True:
                try:
                    tail.follow()
                except httpx.TransportError as exc:
                    errors.print(plain(f"stream interrupted ({exc}); reconnecting"), style="yellow")
                time.sleep(interval)
        except KeyboardInterrupt:
            return


def _show(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print(orjson.dumps(event).decode(), highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(_table([event]))


class _Tail:
    """One ``events tail``: where its stream stands, across reconnections."""

    def __init__(self, client: httpx.Client, q: str | None, last: int, as_json: bool) -> None:
        self.client, self.q, self.last, self.as_json = client, q, last, as_json
        self.last_id: str | None = None  # the id: of the last message received
        self.shown: set[int] = set()  # the backlog's events, printed already

    def opened(self) -> None:
        """The stream holds its position: print the newest events before it, then wait."""
        if self.last:
            params = {"q": self.q, "sort": "-received", "per_page": self.last}
            backlog = _get(self.client, "/event", params).json()[::-1]  # oldest first
            self.shown.update(event["id"] for event in backlog)
            for event in backlog:
                _show(event, self.as_json)
        errors.print("waiting for new events (Ctrl-C stops)", highlight=False)

    def follow(self) -> None:
        """Print the stream's events until it ends."""
        import httpx

        first = self.last_id is None  # a new stream, not one resumed
        headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
        timeout = httpx.Timeout(30, read=60)  # heartbeats arrive every 15 s
        params = {"q": self.q} if self.q else {}
        with self.client.stream(
            "GET", "/event/stream", params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                api_failed(response)
            data: str | None = None
            kind = "event"
            for line in response.iter_lines():
                if line.startswith("id: "):
                    self.last_id = line[4:]
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif not line and data is None and first and self.last_id is not None:
                    first = False  # the stream's first message: its position
                    self.opened()
                elif not line and data is not None and kind == "closed":
                    reason = orjson.loads(data).get("reason", "")
                    errors.print(plain(f"the server closed the stream ({reason})"), style="yellow")
                elif not line and data is not None:
                    event = orjson.loads(data)
                    if event.get("id") not in self.shown:
                        _show(event, self.as_json)
                if not line:
                    data, kind = None, "event"

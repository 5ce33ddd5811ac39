"""The live stream: ``GET /event/stream`` as Server-Sent Events.

Each SSE message is one event record; its ``id:`` is the log position (``seq``), so a client
that reconnects with ``Last-Event-ID`` resumes exactly after the last event it saw, first
from the stored log and then live. Without ``Last-Event-ID`` the stream starts at "now".
The list's filters apply (``q=type:3|5`` or plain parameters).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from herald.api.deps import EventReader, ServicesDep
from herald.api.event_query import parse_filters
from herald.api.live import LogFeed, Subscription
from herald.api.problems import field_problem
from herald.api.services import Services
from herald.store import EventFilter, LogEntry

router = APIRouter(tags=["events"])
log = logging.getLogger("herald.stream")

CATCH_UP_BATCH = 500
RETRY_MS = 2000


def feed_for(request: Request, services: Services) -> LogFeed:
    """The app's one live feed (created on first use)."""
    feed: LogFeed | None = getattr(request.app.state, "live_feed", None)
    if feed is None:
        feed = LogFeed(services.store, services.run)
        request.app.state.live_feed = feed
    return feed


async def close_live_feed(app: Any) -> None:
    """Stop the live feed's polling, if it was ever started (the app is shutting down)."""
    feed: LogFeed | None = getattr(app.state, "live_feed", None)
    if feed is not None:
        await feed.close()


def end_live_streams(app: Any) -> None:
    """Ask every open live stream to end: the server is stopping (safe in a signal handler)."""
    feed: LogFeed | None = getattr(app.state, "live_feed", None)
    if feed is not None:
        feed.closing = True


def frame(entry: LogEntry) -> bytes:
    """One SSE message: the record as data, its log position as id."""
    return b"id: %d\nevent: event\ndata: %s\n\n" % (entry.seq, entry.body)


def _last_event_id(headers: Mapping[str, str]) -> int | None:
    raw = headers.get("last-event-id")
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise field_problem(400, "Last-Event-ID", "must be the id of an event of this stream")
    return value


def _has_until(params: Mapping[str, str]) -> bool:
    terms = [part.partition(":")[0].strip() for part in params.get("q", "").split(",")]
    return "until" in params or "until" in terms


class EventStream(Response):
    """An ASGI response: catch up from the log, then follow the feed, with heartbeats.

    Ends when the client goes away or falls ``capacity`` events behind.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        services: Services,
        feed: LogFeed,
        flt: EventFilter,
        after_seq: int | None,
        *,
        heartbeat: float,
        capacity: int,
    ) -> None:
        super().__init__(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.services = services
        self.feed = feed
        self.subscription = Subscription(flt, capacity)
        self.cursor = after_seq  # the log position of the last event sent
        self.heartbeat = heartbeat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as tasks:

                async def pump() -> None:
                    async for chunk in self._messages():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})

                async def watch_end() -> None:
                    await self.subscription.ended.wait()
                    tasks.cancel_scope.cancel()

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tasks.cancel_scope.cancel()

                for task in (pump, watch_end, watch_disconnect):
                    tasks.start_soon(task)
        finally:
            self.feed.unsubscribe(self.subscription)
        if self.subscription.reason == "too slow":
            log.warning("live stream: a client fell %d events behind; closed", self.capacity)
        with anyio.move_on_after(1):  # a client that reads nothing cannot take even this
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    @property
    def capacity(self) -> int:
        return self.subscription.capacity

    async def _messages(self) -> AsyncIterator[bytes]:
        if self.cursor is None:
            self.cursor = await self.services.run(self.services.store.last_seq)
        yield b"retry: %d\n: stream after %d\n\n" % (RETRY_MS, self.cursor)
        # Catch up from the stored log, join the feed, then catch up once more: whatever
        # committed before joining is read from the log, everything after arrives queued.
        async for chunk in self._catch_up():
            yield chunk
        await self.feed.subscribe(self.subscription)
        async for chunk in self._catch_up():
            yield chunk
        while True:
            entry = None
            with anyio.move_on_after(self.heartbeat):
                entry = await self.subscription.queue.get()
            if entry is None:
                yield b": heartbeat\n\n"
            elif entry.seq > self.cursor:
                self.cursor = entry.seq
                yield frame(entry)

    async def _catch_up(self) -> AsyncIterator[bytes]:
        """The frames of what the log holds after the cursor, moving the cursor along."""
        scope = self.subscription.filter.organisation_ids
        while True:
            assert self.cursor is not None
            entries: list[LogEntry] = await self.services.run(
                self.services.store.read_log, self.cursor, CATCH_UP_BATCH, scope
            )
            for entry in entries:
                self.cursor = entry.seq
                if self.subscription.filter.matches(orjson.loads(entry.body)):
                    yield frame(entry)
            if len(entries) < CATCH_UP_BATCH:
                return


@router.get(
    "/event/stream",
    response_class=EventStream,
    status_code=200,  # EventStream takes no status_code: without it /api/openapi.json fails
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE"}},
)
async def stream_events(
    request: Request, services: ServicesDep, principal: EventReader
) -> EventStream:
    """Follow new events as Server-Sent Events, with the list's filters.

    Send ``Last-Event-ID`` (the ``id:`` of the last message received) to resume after it;
    comments (``: heartbeat``) keep idle connections open every 15 s.
    """
    flt, _ = parse_filters(
        request.query_params, scope=principal.organisation_scope, catalog=services.catalog
    )
    if not _has_until(request.query_params):
        flt = flt.replace(until_ms=None)  # the list's "from runs to now"
    settings = services.settings
    return EventStream(
        services,
        feed_for(request, services),
        flt,
        _last_event_id(request.headers),
        heartbeat=settings.stream_heartbeat_seconds,
        capacity=settings.stream_buffer_events,
    )

"""The live stream: ``GET /event/stream`` as Server-Sent Events.

Each SSE message is one event record; its ``id:`` is an opaque resume token (the log
position sealed for the caller's organisation, see ``herald.live.resume``), so a client
that reconnects with ``Last-Event-ID`` resumes exactly after the last event it saw, first
from the stored log and then live, without learning anything of other tenants' volume.
The first message carries only an ``id:`` (where the stream starts), so a client that
drops before any event still resumes without a gap. Without ``Last-Event-ID`` the stream
starts at "now"; ``Last-Event-ID: 0`` replays the retained log from its start. The list's
filters apply (``q=type:3|5`` or plain parameters).

Streams are capped per token and per organisation (429 beyond), and end with an
``event: closed`` message naming the reason when the server stops or the credentials are
revoked or expire (checked every ``HERALD_STREAM_RECHECK_SECONDS``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from herald.api.deps import EventReader, ServicesDep, bearer
from herald.api.problems import field_problem
from herald.auth import jwt_secret
from herald.events.query_params import organisation_names, parse_filters
from herald.events.types import LogEntry
from herald.live.feed import Frame, LogFeed, OrgScope, Subscription, read_selected
from herald.live.guard import StreamGuard
from herald.live.resume import InvalidResumeToken, ResumeTokens
from herald.services import Services

router = APIRouter(tags=["events"])
log = logging.getLogger("herald.stream")

CATCH_UP_BATCH = 500
COALESCE_FRAMES = 32  # queued events sent in one write, before other tasks get a turn
RETRY_MS = 2000
FROM_THE_START = "0"


@dataclass
class Live:
    """The app's live-stream machinery: the feed, the guard and the resume tokens."""

    feed: LogFeed
    guard: StreamGuard
    tokens: ResumeTokens


async def live_for(request: Request, services: Services) -> Live:
    """The app's one ``Live`` (created on first use)."""
    live: Live | None = getattr(request.app.state, "live", None)
    if live is None:
        secret = await services.run(jwt_secret, services.store, services.settings.jwt_secret)
        live = getattr(request.app.state, "live", None)  # another request may have been first
        if live is None:
            settings = services.settings
            guard = StreamGuard(
                services.auth.authenticate,
                services.run,
                per_token=settings.stream_max_per_token,
                per_organisation=settings.stream_max_per_organisation,
                recheck_seconds=settings.stream_recheck_seconds,
            )
            tokens = ResumeTokens(secret)
            feed = LogFeed(
                services.store,
                services.run,
                functools.partial(frame, tokens),
                loops=services.loops,
            )
            live = Live(feed, guard, tokens)
            request.app.state.live = live
    return live


async def close_live_feed(app: Any) -> None:
    """Stop the live feed's polling and checking, if ever started (the app is shutting down)."""
    live: Live | None = getattr(app.state, "live", None)
    if live is not None:
        await live.guard.close()
        await live.feed.close()


def end_live_streams(app: Any) -> None:
    """Ask every open live stream to end: the server is stopping (safe in a signal handler)."""
    live: Live | None = getattr(app.state, "live", None)
    if live is not None:
        live.feed.closing = True


def frame(tokens: ResumeTokens, entry: LogEntry, scope: OrgScope) -> bytes:
    """One SSE message: the record as data, its resume token for ``scope`` as id."""
    return b"id: %s\nevent: event\ndata: %s\n\n" % (
        tokens.seal(entry.seq, scope).encode(),
        entry.body,
    )


def closed(reason: str) -> bytes:
    """The stream's last message: why the server ends it."""
    return b"event: closed\ndata: %s\n\n" % orjson.dumps({"reason": reason})


def _resume_after(headers: Mapping[str, str], tokens: ResumeTokens, scope: OrgScope) -> int | None:
    """The log position ``Last-Event-ID`` names, or None (start at "now")."""
    raw = headers.get("last-event-id", "").strip()
    if not raw:
        return None
    if raw == FROM_THE_START:
        return 0
    try:
        return tokens.open(raw, scope)
    except InvalidResumeToken:
        raise field_problem(
            400, "Last-Event-ID", "must be the id: of a message of this organisation's stream"
        ) from None


def _has_until(params: Mapping[str, str]) -> bool:
    terms = [part.partition(":")[0].strip() for part in params.get("q", "").split(",")]
    return any(name in params or name in terms for name in ("until", "timestamp"))


class EventStream(Response):
    """An ASGI response: catch up from the log, then follow the feed, with heartbeats.

    Ends when the client goes away, falls ``capacity`` events behind, or the subscription
    is ended (server stopping, credentials gone): then with an ``event: closed`` message.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        services: Services,
        live: Live,
        subscription: Subscription,
        after_seq: int | None,
        *,
        heartbeat: float,
    ) -> None:
        super().__init__(headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.services = services
        self.live = live
        self.subscription = subscription
        self.cursor = after_seq  # the log position of the last event sent (never shown)
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
            self.live.feed.unsubscribe(self.subscription)
            self.live.guard.release(self.subscription)
        reason = self.subscription.reason
        if reason == "too slow":
            log.warning("live stream: a client fell %d events behind; closed", self.capacity)
        last = closed(reason) if reason else b""
        with anyio.move_on_after(1):  # a client that reads nothing cannot take even this
            await send({"type": "http.response.body", "body": last, "more_body": False})

    @property
    def capacity(self) -> int:
        return self.subscription.capacity

    async def _messages(self) -> AsyncIterator[bytes]:
        if self.cursor is None:
            self.cursor = await self.services.run(self.services.store.log.last_seq)
        start = self.live.tokens.seal(self.cursor, self.subscription.scope).encode()
        yield b"retry: %d\nid: %s\n: stream open\n\n" % (RETRY_MS, start)
        # Catch up from the stored log, join the feed, then catch up once more: whatever
        # committed before joining is read from the log, everything after arrives queued.
        async for chunk in self._catch_up():
            yield chunk
        await self.live.feed.subscribe(self.subscription)
        async for chunk in self._catch_up():
            yield chunk
        queue = self.subscription.queue
        while True:
            first: Frame | None = None
            with anyio.move_on_after(self.heartbeat):
                first = await queue.get()
            if first is None:
                yield b": heartbeat\n\n"
                continue
            frames, fresh = [first], []
            while len(frames) < COALESCE_FRAMES and not queue.empty():
                frames.append(queue.get_nowait())
            for seq, message in frames:
                if seq > self.cursor:
                    self.cursor = seq
                    fresh.append(message)
            if fresh:
                yield b"".join(fresh)
            await anyio.lowlevel.checkpoint()  # a busy stream must not hold the event loop

    async def _catch_up(self) -> AsyncIterator[bytes]:
        """The frames of what the log holds after the cursor, moving the cursor along."""
        done = False
        while not done:
            assert self.cursor is not None
            frames, self.cursor, done = await self.services.run(
                read_selected,
                self.services.store,
                self.subscription.filter,
                self.subscription.scope,
                self.live.feed.frame,
                self.cursor,
                CATCH_UP_BATCH,
            )
            if frames:
                yield b"".join(message for _, message in frames)


@router.get(
    "/event/stream",
    response_class=EventStream,
    status_code=200,  # EventStream takes no status_code: without it /api/openapi.json fails
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE"}},
)
async def stream_events(
    request: Request,
    services: ServicesDep,
    principal: EventReader,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> EventStream:
    """Follow new events as Server-Sent Events, with the list's filters.

    Send ``Last-Event-ID`` (the ``id:`` of the last message received) to resume after it;
    comments (``: heartbeat``) keep idle connections open every 15 s. A token may hold
    ``HERALD_STREAM_MAX_PER_TOKEN`` streams and an organisation
    ``HERALD_STREAM_MAX_PER_ORGANISATION`` (429 beyond).
    """
    flt, _ = parse_filters(
        request.query_params,
        scope=principal.organisation_scope,
        catalog=services.catalog,
        organisation_named=await organisation_names(services, request.query_params),
    )
    if not _has_until(request.query_params):
        flt = flt.replace(until_ms=None)  # the list's "from runs to now"
    live = await live_for(request, services)
    scope = principal.organisation_scope
    after_seq = _resume_after(request.headers, live.tokens, scope)
    assert credentials is not None  # EventReader admitted the request
    subscription = Subscription(flt, services.settings.stream_buffer_events, scope)
    live.guard.admit(subscription, principal, credentials.credentials)  # or StreamLimitReached
    return EventStream(
        services,
        live,
        subscription,
        after_seq,
        heartbeat=services.settings.stream_heartbeat_seconds,
    )

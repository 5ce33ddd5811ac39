"""The delivery worker's sends: each handler through its own sink, each organisation's
requests at once bounded by its share of the connections."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from herald.config import Settings
from herald.delivery.formats import Item
from herald.delivery.runtime import HandlerRuntime
from herald.delivery.sinks import Outgoing, Sink, open_sink
from herald.delivery.webhook import SendResult, WebhookSender
from herald.handlers.types import Handler
from herald.sealing import SecretBox


class Dispatcher:
    """Opens, keeps and closes the handlers' sinks and sends their batches."""

    def __init__(self, settings: Settings, sender: WebhookSender, box: SecretBox | None) -> None:
        """``box`` opens the handlers' sealed secrets (None: they are stored in plaintext)."""
        self.settings = settings
        self.sender = sender
        self.box = box
        self._slots: dict[int, asyncio.Semaphore] = {}  # per organisation: requests at once

    async def sink(self, runtime: HandlerRuntime, handler: Handler) -> Sink:
        """The handler's sink, kept (with its connection) while its settings stay the same."""
        kept = runtime.sink
        if kept is not None and kept[0] == handler.spec:
            return kept[1]
        await self.close_sink(runtime)
        sink = open_sink(
            handler,
            self.box,
            self.sender,
            allow_private=self.settings.allow_private_targets,
            timeout=self.settings.delivery_timeout_seconds,
        )
        runtime.sink = (handler.spec, sink)
        return sink

    async def send(
        self,
        runtime: HandlerRuntime,
        sink: Sink,
        handler: Handler,
        items: list[Item],
        msg_id: str,
        replay_id: int | None,
    ) -> tuple[SendResult, datetime]:
        """Send one batch in the organisation's slot: how it went, and when it was signed.
        From the moment it goes out the handler is ``busy``: stopping waits for it."""
        async with self._slot(handler.organisation_id):
            now = datetime.now(UTC)  # signed when sent, however long the slot took
            runtime.busy = True
            return await sink.send(Outgoing(handler, items, msg_id, now, replay_id)), now

    def _slot(self, organisation_id: int) -> asyncio.Semaphore:
        """The organisation's share of the connections: one tenant's slow receivers cannot
        hold the pool every tenant sends through."""
        slot = self._slots.get(organisation_id)
        if slot is None:
            slot = self._slots[organisation_id] = asyncio.Semaphore(
                self.settings.delivery_connections_per_organisation
            )
        return slot

    async def close_sink(self, runtime: HandlerRuntime) -> None:
        kept, runtime.sink = runtime.sink, None
        if kept is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                await kept[1].aclose()

"""The webhook sink: a handler's batch as one signed POST through the worker's shared pool."""

from __future__ import annotations

from herald.delivery.requests import build_request
from herald.delivery.sinks.base import Outgoing
from herald.delivery.webhook import SendResult, WebhookSender
from herald.sealing import SecretBox


class WebhookSink:
    """Sends through a ``WebhookSender`` it does not own (closing it closes nothing)."""

    def __init__(self, sender: WebhookSender, box: SecretBox | None) -> None:
        self._sender = sender
        self._box = box

    async def send(self, out: Outgoing) -> SendResult:
        body, headers = build_request(out.handler, out.items, out.msg_id, out.now, self._box)
        return await self._sender.send(out.handler.spec.url, body, headers)

    async def aclose(self) -> None:
        return None

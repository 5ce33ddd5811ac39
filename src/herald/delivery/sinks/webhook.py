"""The webhook sink: a handler's batch as one signed POST through the worker's shared pool,
with the handler's own headers (receiver credentials, custom headers) and timeout."""

from __future__ import annotations

from herald.delivery.headers import authorization
from herald.delivery.requests import build_request
from herald.delivery.sinks.base import Outgoing, settings_of
from herald.delivery.webhook import SendResult, WebhookSender
from herald.handlers.types import Handler
from herald.sealing import SecretBox


class WebhookSink:
    """Sends through a ``WebhookSender`` it does not own (closing it closes nothing). The
    handler's credentials are opened once, when the sink is opened (the worker keeps a sink
    while the handler's settings stay the same)."""

    def __init__(
        self,
        sender: WebhookSender,
        box: SecretBox | None,
        handler: Handler,
        credentials: dict[str, str],
    ) -> None:
        self._sender = sender
        self._box = box
        settings = settings_of(handler)
        self._headers: dict[str, str] = dict(settings.get("headers") or {})
        auth = authorization(credentials)
        if auth is not None:
            self._headers["Authorization"] = auth
        timeout = settings.get("timeout_seconds")
        self._timeout = float(timeout) if timeout is not None else None

    async def send(self, out: Outgoing) -> SendResult:
        body, headers = build_request(
            out.handler, out.items, out.msg_id, out.now, self._box, self._headers
        )
        return await self._sender.send(out.handler.spec.url, body, headers, self._timeout)

    async def aclose(self) -> None:
        return None

"""Refuse request bodies over the size limit before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.api.problems import Problem, problem_response


def _too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        "Content too large",
        f"body: larger than the limit of {max_bytes} bytes",
        [{"field": "body", "reason": f"larger than {max_bytes} bytes"}],
    )


class BodySizeLimit:
    """ASGI middleware: 413 for a body, declared or streamed, over ``max_bytes``.

    A streamed body that grows past the limit raises a Problem from ``receive``, which the
    app's problem handler answers; nothing past the limit is buffered.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await problem_response(_too_large(self.max_bytes))(scope, receive, send)
                return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)

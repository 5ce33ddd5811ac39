"""Refuse NUL characters in a request's text: PostgreSQL cannot store them (SQLite can), so
both backends refuse them here, at the edge, with a problem naming the field."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.api.problems import Problem, field_problem, problem_response
from herald.nul import NUL_REASON, nul_field

_ESCAPED_NUL = b"\\u0000"  # how JSON spells NUL (a raw NUL byte is not valid JSON)
_RECORDS = "/api/v1/ingest/"  # provider batches: the intake quarantines such a record alone


def _query_field(query_string: bytes) -> str | None:
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


class RefuseNul:
    """ASGI middleware: 400 for NUL in the path or query, 422 for NUL in a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _query_field(scope.get("query_string", b""))
        if where is None and "\x00" in scope["path"]:
            where = "path"
        if where is not None:
            await problem_response(field_problem(400, where, NUL_REASON))(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or scope["path"].startswith(_RECORDS):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except Problem as problem:  # the body size limit, raised while reading
            await problem_response(problem)(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        if _ESCAPED_NUL in body:
            try:
                where = nul_field(orjson.loads(body))
            except orjson.JSONDecodeError:
                where = None  # not JSON: the route answers that
            if where is not None:
                await problem_response(field_problem(422, where, NUL_REASON))(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (the size limit outside bounds it), None if the client went away."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)

"""A long answer's progress as NDJSON, for the client that asks for it (``Accept:
application/x-ndjson``): one ``{"progress": ...}`` line as the work goes on, then one
``{"result": ...}`` line with the answer the plain JSON request gets (or one ``{"error":
...}`` line, a problem document, if it failed once the answer had begun). A refusal before
the work starts (bad input, no query slot) is answered as usual: problem+json."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from herald.api.problems import Problem, field_problem, problem_for
from herald.errors import DomainError
from herald.store.errors import QueryTimeout

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
T = TypeVar("T")
Told = Callable[[int, int], None]  # (how much is done, how far: a time in ms)


def wants_progress(request: Request) -> bool:
    """Whether the client asked for the NDJSON answer with progress."""
    return NDJSON in request.headers.get("accept", "")


def _line(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document) + b"\n"


def _problem(error: BaseException) -> Problem:
    if isinstance(error, DomainError):
        return problem_for(error)
    if isinstance(error, QueryTimeout):
        return field_problem(422, "q", str(error), title="Query too slow")
    log.error("a streamed answer failed", exc_info=error)
    return Problem(500, "Internal error", "the work failed; try again")


async def streamed(
    start: Callable[[Told], Awaitable[T]],
    progress: Callable[[int, int], dict[str, Any]],
    result: Callable[[T], dict[str, Any]],
) -> StreamingResponse:
    """Start ``start(told)`` and answer its progress (``progress(done, at)`` of each
    ``told``, called from any thread) and then ``result`` of its outcome, as NDJSON
    lines. An error before it has begun is raised here (answered as usual)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    def told(done: int, at: int) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (done, at))

    task = asyncio.ensure_future(start(told))
    await asyncio.sleep(0)  # the work takes its slot (or is refused) at its first step
    if task.done() and task.exception() is not None:
        task.result()

    async def lines() -> AsyncIterator[bytes]:
        waiting: asyncio.Future[tuple[int, int]] | None = None
        try:
            while not task.done():
                waiting = waiting or asyncio.ensure_future(queue.get())
                either: set[asyncio.Future[Any]] = {task, waiting}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if waiting.done():
                    yield _line({"progress": progress(*waiting.result())})
                    waiting = None
            if waiting is not None and waiting.done():
                yield _line({"progress": progress(*waiting.result())})
            while not queue.empty():  # told before it ended (its last page, say)
                yield _line({"progress": progress(*queue.get_nowait())})
            error = task.exception()
            if error is not None:
                problem = _problem(error)
                shown = {"status": problem.status, "title": problem.title}
                yield _line({"error": shown | {"detail": problem.detail, "errors": problem.errors}})
                return
            yield _line({"result": result(task.result())})
        finally:
            if waiting is not None:
                waiting.cancel()

    return StreamingResponse(lines(), media_type=NDJSON)

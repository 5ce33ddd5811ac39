"""The NDJSON answer with progress (api/progress.py) over a small app: progress lines then
the result; a refusal before the work begins as problem+json; an error once begun as a
last error line."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from starlette.responses import StreamingResponse

from herald.api.problems import install_problem_handlers
from herald.api.progress import Told, streamed
from herald.errors import Invalid, RetryLater

NDJSON = {"Accept": "application/x-ndjson"}


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    async def counting(told: Told) -> int:
        for done in range(3):
            told(done, 1000 * done)
            await asyncio.sleep(0.01)
        told(3, 3000)  # told as it ends: still a line before the result
        return 3

    async def failing(told: Told) -> int:
        told(1, 0)
        await asyncio.sleep(0.01)
        raise Invalid.at("q", "too slow to answer")

    async def refused(told: Told) -> int:
        raise RetryLater("every slot is taken", title="Busy", retry_after=1)

    works = {"counting": counting, "failing": failing, "refused": refused}

    @app.get("/work/{name}", response_model=None)
    async def work(name: str) -> StreamingResponse:
        return await streamed(
            works[name],
            lambda done, at: {"done": done, "at": at},
            lambda found: {"found": found},
        )

    return app


def _get(path: str) -> httpx.Response:
    """GET ``path`` of the app, asking for NDJSON (the whole answer read)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path, headers=NDJSON)

    return asyncio.run(get())


def _lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line]


def test_progress_lines_then_the_result() -> None:
    answer = _get("/work/counting")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    *steps, last = _lines(answer.text)
    assert last == {"result": {"found": 3}}
    assert steps == [{"progress": {"done": n, "at": 1000 * n}} for n in range(4)]


def test_an_error_once_begun_is_the_last_line() -> None:
    answer = _get("/work/failing")
    assert answer.status_code == 200
    lines = _lines(answer.text)
    assert lines[0] == {"progress": {"done": 1, "at": 0}}
    error = lines[-1]["error"]
    assert (error["status"], error["errors"]) == (
        422,
        [{"field": "q", "reason": "too slow to answer"}],
    )


def test_a_refusal_before_it_begins_is_problem_json() -> None:
    answer = _get("/work/refused")
    assert answer.status_code == 429
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "1"

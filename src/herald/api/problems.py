"""Errors as RFC 9457 ``application/problem+json`` bodies that name the field and the reason.

The one place where errors meet HTTP: the services' errors (``herald.errors``), the store's
(``store/errors.py``) and the framework's each answer with one status here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from herald.api.methods import allowed_methods
from herald.errors import (
    DomainError,
    Forbidden,
    Invalid,
    Malformed,
    NotFound,
    RetryLater,
    TooMany,
    validation_errors,
)
from herald.metrics import QUERIES_REFUSED
from herald.sealing import SecretUnavailable
from herald.store import Conflict, InvalidQuery, StoreError, StoreUnavailable
from herald.store import NotFound as StoreNotFound
from herald.store.errors import LimitReached, QueryTimeout, TryAgain

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("herald.api")


class Problem(Exception):
    """An HTTP error answered as a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


def field_problem(status: int, field: str, reason: str, title: str | None = None) -> Problem:
    """A problem about one field."""
    return Problem(
        status,
        title or "Invalid request",
        f"{field}: {reason}",
        [{"field": field, "reason": reason}],
    )


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": problem.title, "status": problem.status}
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors:
        body["errors"] = problem.errors
    return Response(
        orjson.dumps(body), problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


def problem_for(error: DomainError) -> Problem:
    """The answer to a service's error: its status by class, its title, detail and fields."""
    headers = {"Retry-After": str(error.retry_after)} if isinstance(error, RetryLater) else {}
    status = next(code for kind, code in _STATUS.items() if isinstance(error, kind))
    return Problem(status, error.title, error.detail, error.errors, headers)


_STATUS: dict[type[DomainError], int] = {
    Malformed: 400,
    Invalid: 422,
    Forbidden: 403,
    NotFound: 404,
    RetryLater: 429,
    TooMany: 429,
    DomainError: 422,  # last: a class not named above answers as its base
}


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error Herald raises, and every framework error, as problem+json."""

    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_domain(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        return problem_response(problem_for(exc))

    async def on_secret(_: Request, exc: Exception) -> Response:
        return problem_response(Problem(503, "Secret unavailable", str(exc)))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        in_query = any(e.get("loc", ("",))[0] in ("query", "path") for e in exc.errors())
        status = 400 if in_query else 422
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem_response(Problem(status, "Invalid request", detail, errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # the route that answered knows only its own methods
            allowed = allowed_methods(request.app.openapi()["paths"], request.scope["path"])
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; use {headers['Allow']}"
            return problem_response(Problem(405, "Method not allowed", detail, headers=headers))
        return problem_response(Problem(exc.status_code, str(exc.detail), headers=headers))

    async def on_not_found(_: Request, exc: Exception) -> Response:
        return problem_response(Problem(404, "Not found", str(exc)))

    async def on_invalid_query(_: Request, exc: Exception) -> Response:
        return problem_response(field_problem(400, "cursor", str(exc)))

    async def on_timeout(_: Request, exc: Exception) -> Response:
        QUERIES_REFUSED.labels("timeout").inc()
        reason = f"{exc}; narrow it: a shorter from/until range, or a filter by endpoint or type"
        return problem_response(field_problem(422, "q", reason, title="Query too slow"))

    async def on_unavailable(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        log.warning("storage unavailable: %s", exc)  # the driver's text stays in the logs
        return problem_response(
            Problem(503, "Storage unavailable", exc.why.value, headers={"Retry-After": "5"})
        )

    async def on_try_again(_: Request, exc: Exception) -> Response:
        return problem_response(Problem(503, "Try again", str(exc), headers={"Retry-After": "1"}))

    async def on_conflict(_: Request, exc: Exception) -> Response:
        return problem_response(Problem(409, "Conflict", str(exc)))

    async def on_limit(_: Request, exc: Exception) -> Response:
        return problem_response(Problem(409, "Limit reached", str(exc)))

    async def on_store_error(_: Request, exc: Exception) -> Response:
        log.error("store error: %s", exc)
        return problem_response(Problem(500, "Storage error", "the store could not do this"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(SecretUnavailable, on_secret)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(StoreNotFound, on_not_found)
    app.add_exception_handler(InvalidQuery, on_invalid_query)
    app.add_exception_handler(QueryTimeout, on_timeout)
    app.add_exception_handler(StoreUnavailable, on_unavailable)
    app.add_exception_handler(TryAgain, on_try_again)
    app.add_exception_handler(LimitReached, on_limit)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(StoreError, on_store_error)

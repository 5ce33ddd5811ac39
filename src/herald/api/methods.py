"""405 with ``Allow`` for a method a route does not take (the console's catch-all mount at
``/`` would otherwise answer every such request, API paths included, with 404)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from starlette.routing import Match, Mount
from starlette.types import Scope

API_PATHS = ("/api/", "/health", "/ready", "/metrics")


def allowed_methods(paths: Mapping[str, Mapping[str, Any]], path: str) -> list[str]:
    """The methods the OpenAPI document gives the request's path: of the templates that
    match it, those with the fewest parameters (``/ingest/rejected/retry`` is not
    ``/ingest/rejected/{rejected_id}``), as OpenAPI resolves paths."""
    fewest: int | None = None
    methods: set[str] = set()
    for template, operations in paths.items():
        if _pattern(template).fullmatch(path):
            params = template.count("{")
            if fewest is None or params < fewest:
                fewest, methods = params, set()
            if params == fewest:
                methods |= {method.upper() for method in operations}
    return sorted(methods) or ["GET", "HEAD"]  # no API path: the console's static files


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)))


class ConsoleMount(Mount):
    """The console's static files at ``/``, which never claim an API path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].startswith(API_PATHS):
            return Match.NONE, {}
        return super().matches(scope)

"""405 with ``Allow`` for a method a route does not take (the console's catch-all mount at
``/`` would otherwise answer every such request, API paths included, with 404)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

API_PATHS = ("/api/", "/health", "/ready", "/metrics")
METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route takes at the request's path (asked of the routes themselves:
    FastAPI nests included routers)."""
    api = [route for route in routes if not isinstance(route, Mount)]
    allowed = []
    for method in METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in api):
            allowed.append(method)
    return allowed or ["GET", "HEAD"]  # no API route: the console's static files


class ConsoleMount(Mount):
    """The console's static files at ``/``, which never claim an API path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"].startswith(API_PATHS):
            return Match.NONE, {}
        return super().matches(scope)

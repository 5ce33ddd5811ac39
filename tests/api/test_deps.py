"""No route of the API may depend on a sync function.

FastAPI runs a sync (``def``) dependency in a worker thread on every request that uses it:
a thread hand-off for what is usually a read of ``request.app.state``. Dependencies that do
blocking work belong in an ``async def`` that awaits ``Services.run``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts

from herald.api.app import create_app
from herald.api.deps import bearer, get_principal, get_services
from herald.config import Settings


def runs_on_the_loop(call: Callable[..., Any]) -> bool:
    """Whether FastAPI awaits ``call`` on the event loop rather than in a worker thread."""
    if inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call):
        return True
    if inspect.isclass(call) or inspect.isroutine(call):
        return False  # a class is instantiated, a plain def called: both in a thread
    method = type(call).__call__  # an instance such as HTTPBearer(): its __call__ counts
    return inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method)


def route_dependants(app: FastAPI) -> Iterator[tuple[str, Dependant]]:
    """Each API route of ``app`` (through included routers) with its dependant tree."""
    for route in iter_route_contexts(app.routes):
        dependant: Dependant | None = getattr(route, "dependant", None)
        if dependant is not None:
            yield f"{sorted(route.methods or ())} {route.path}", dependant


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency call below ``dependant``, sub-dependencies included (depth first)."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from dependency_calls(sub)


def sync_dependencies(app: FastAPI) -> list[str]:
    return sorted(
        {
            f"{route}: {getattr(call, '__qualname__', repr(call))}"
            for route, dependant in route_dependants(app)
            for call in dependency_calls(dependant)
            if not runs_on_the_loop(call)
        }
    )


def test_no_route_has_a_sync_dependency() -> None:
    app = create_app(Settings())
    routes = list(route_dependants(app))
    calls = {call for _, dependant in routes for call in dependency_calls(dependant)}
    # the walk reaches the API's routes and their nested dependencies, not nothing
    assert len(routes) >= 25
    assert {get_services, get_principal, bearer} <= calls
    assert sync_dependencies(app) == []


def sync_endpoints(app: FastAPI) -> list[str]:
    return [
        route
        for route, dependant in route_dependants(app)
        if dependant.call is None or not runs_on_the_loop(dependant.call)
    ]


def test_no_route_endpoint_is_sync() -> None:
    """An endpoint is called like a dependency: a ``def`` one would run in a thread too."""
    assert sync_endpoints(create_app(Settings())) == []


# an app with sync dependencies in each place one can hide (module level: FastAPI resolves
# the string annotations of ``from __future__ import annotations`` in the module's globals)
def _sync_leaf() -> int:
    return 1


async def _async_middle(value: Annotated[int, Depends(_sync_leaf)]) -> int:
    return value


class _Paging:
    def __init__(self, page: int = 1) -> None:
        self.page = page


def _sync_router_guard() -> None:
    return None


_router = APIRouter(dependencies=[Depends(_sync_router_guard)])


@_router.get("/nested")
async def _nested(value: Annotated[int, Depends(_async_middle)]) -> int:
    return value


@_router.get("/class")
async def _by_class(paging: Annotated[_Paging, Depends()]) -> int:
    return paging.page


@_router.get("/sync")
def _sync_endpoint() -> int:
    return 0


def test_the_check_finds_a_sync_dependency_however_deep() -> None:
    """The check above is not vacuous: a sync call anywhere in the tree is reported."""
    app = FastAPI()
    app.include_router(_router, prefix="/v1")
    found = sync_dependencies(app)
    assert found == [
        "['GET'] /v1/class: _Paging",
        "['GET'] /v1/class: _sync_router_guard",
        "['GET'] /v1/nested: _sync_leaf",
        "['GET'] /v1/nested: _sync_router_guard",
        "['GET'] /v1/sync: _sync_router_guard",
    ]
    assert sync_endpoints(app) == ["['GET'] /v1/sync"]

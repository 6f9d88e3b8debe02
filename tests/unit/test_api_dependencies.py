"""Every route's dependencies run on the event loop.

FastAPI runs a plain `def` dependency (or endpoint) in a worker thread: a thread hop a
call, ~15 % of the API's samples under a flood of creations (docs/performance.md,
"Session 12"), and every hop is a wait behind whatever holds the GIL. The app's own
dependencies only read `request.app.state`, so they are `async def`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.app import create_app


def _api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """The app's routes, through the routers it includes (none adds dependencies)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _on_the_loop(call: Any) -> bool:
    target = call if inspect.isfunction(call) else type(call).__call__
    return inspect.iscoroutinefunction(target)


def test_no_route_sends_a_dependency_or_itself_to_the_threadpool() -> None:
    routes = list(_api_routes(create_app().routes))
    assert len(routes) > 20
    off_loop = sorted(
        f"{route.path}: {getattr(call, '__qualname__', type(call).__name__)}"
        for route in routes
        for call in [route.endpoint, *_calls(route.dependant)]
        if not _on_the_loop(call)
    )
    assert off_loop == []

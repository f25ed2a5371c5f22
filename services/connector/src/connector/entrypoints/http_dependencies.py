"""What every account route needs: the use cases' dependencies and a bearer token for that account."""

from __future__ import annotations

from typing import Annotated

from contracts.runtime.http_auth import AuthorizedAccount
from fastapi import Depends, Request
from starlette.types import Scope

from connector.service.dependencies import Dependencies

__all__ = ["AuthorizedAccount", "DependenciesDep", "dependencies_in", "dependencies_of"]


def dependencies_in(scope: Scope) -> Dependencies:
    """The connector's dependencies, held by the app that took the request (``scope["app"]``)."""
    deps: Dependencies = scope["app"].state.dependencies
    return deps


def dependencies_of(request: Request) -> Dependencies:
    return dependencies_in(request.scope)


async def _route_dependencies(request: Request) -> Dependencies:
    # A coroutine, so FastAPI calls it on the event loop: a plain function would be called in a
    # worker thread, a thread hop on every request (a fifth of a webhook's cost at the connector).
    return dependencies_of(request)


DependenciesDep = Annotated[Dependencies, Depends(_route_dependencies)]

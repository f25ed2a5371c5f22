"""What every account route needs: the use cases' dependencies and a bearer token for that account."""

from __future__ import annotations

from typing import Annotated

from contracts.runtime.http_auth import AuthorizedAccount
from fastapi import Depends, Request

from connector.service.dependencies import Dependencies

__all__ = ["AuthorizedAccount", "DependenciesDep", "dependencies_of"]


def dependencies_of(request: Request) -> Dependencies:
    deps: Dependencies = request.app.state.dependencies
    return deps


DependenciesDep = Annotated[Dependencies, Depends(dependencies_of)]

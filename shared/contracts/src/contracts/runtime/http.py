"""The operational HTTP routes every service serves: ``/livez``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contracts.runtime.metrics import REGISTRY

ReadinessCheck = Callable[[], Awaitable[None]]
READINESS_TIMEOUT_S: Final = 2.0


def operational_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """``/livez`` answers while the process runs; ``/readyz`` only when every dependency answers."""
    router = APIRouter(include_in_schema=False)

    @router.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}"
            else:
                results[name] = "ok"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": results}, 200 if ready else 503
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router

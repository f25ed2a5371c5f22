"""The HTTP kit every service's app is built with: the operational routes (``/livez``, ``/readyz``,
``/metrics``), the error envelope, bearer tokens, the body limit, the access log and server spans."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from pydantic import SecretStr

from contracts.runtime.http_auth import AccountTokens
from contracts.runtime.http_errors import install_error_handlers
from contracts.runtime.http_middleware import AccessLog, BodyLimit, instrument_api
from contracts.runtime.http_plain import PlainRoute
from contracts.runtime.metrics import REGISTRY
from contracts.runtime.settings import CommonSettings

ReadinessCheck = Callable[[], Awaitable[None]]
READINESS_TIMEOUT_S: Final = 2.0
#: FastAPI's own OpenTelemetry (spans, metrics, logs of each request) when tracing is off.
_NO_TELEMETRY: Final[TelemetryConfig] = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


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


def service_api(
    settings: CommonSettings,
    *,
    readiness: Mapping[str, ReadinessCheck],
    routers: Sequence[APIRouter] = (),
    jwt_secret: SecretStr | None = None,
    request_durations: Histogram | None = None,
    plain_routes: Sequence[PlainRoute] = (),
    **fastapi_options: Any,
) -> FastAPI:
    """A service's FastAPI app (``fastapi_options``: title, lifespan ...) with the kit installed.

    From the outside in: the server span, the access log line, the body limit, then the routes, whose
    failures all answer in the error envelope. With ``jwt_secret``, ``AuthorizedAccount`` guards routes.
    ``plain_routes`` are matched before every other route and served without FastAPI's request
    handling (:mod:`contracts.runtime.http_plain`), inside the same span, log line, limit and envelope.
    With ``OTEL_SDK_DISABLED=true`` there is no server span at all, neither the instrumentation's nor
    FastAPI's own telemetry: they would only run no-op spans, a large share of a small request's CPU
    (a webhook's).
    """
    if settings.otel_sdk_disabled:
        fastapi_options.setdefault("telemetry", _NO_TELEMETRY)
    app = FastAPI(**fastapi_options)
    if jwt_secret is not None:
        app.state.account_tokens = AccountTokens(jwt_secret)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(AccessLog, request_durations=request_durations)
    for router in routers:
        app.include_router(router)
    app.include_router(operational_router(readiness))
    app.router.routes[0:0] = plain_routes
    if not settings.otel_sdk_disabled:
        instrument_api(app)
    return app

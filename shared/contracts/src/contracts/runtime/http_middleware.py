"""What wraps every request of a service's API: its server span, its one log line, its body limit."""

from __future__ import annotations

import re
import time
from contextlib import nullcontext
from typing import Any, Final

import structlog
from fastapi import FastAPI, HTTPException
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import Span, TracerProvider
from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.runtime.logging import get_logger

_ACCOUNT_IN_PATH: Final = re.compile(r"^/v1/accounts/([^/]{1,128})/")
#: Probes are polled constantly; a line or a span each would drown the requests that matter.
QUIET_PATHS: Final = ("/livez", "/readyz", "/metrics")
_QUERY_ATTRIBUTES: Final = ("url.query",)

_log = get_logger("contracts.runtime.http")


class AccessLog:
    """One log line per request: route, status, outcome, duration and account, never a query string."""

    def __init__(self, app: ASGIApp, *, request_durations: Histogram | None = None) -> None:
        self.app = app
        self.request_durations = request_durations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        match = _ACCOUNT_IN_PATH.match(scope.get("path", ""))
        context: dict[str, Any] = {"account_id": match.group(1)} if match else {}

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # Binding nothing still costs a context manager and two context variable copies a request.
        binding = structlog.contextvars.bound_contextvars(**context) if context else nullcontext()
        with binding:
            try:
                await self.app(scope, receive, send_with_status)
            except Exception as error:
                context["error_type"] = type(error).__name__
                raise
            finally:
                self._record(scope, status, time.perf_counter() - started, context)

    def _record(self, scope: Scope, status: int, duration_s: float, context: dict[str, Any]) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        if self.request_durations is not None:
            self.request_durations.labels(
                method=scope.get("method", ""), route=route, status=str(status)
            ).observe(duration_s)
        if scope.get("path", "") in QUIET_PATHS:
            return
        state: dict[str, Any] = scope.get("state") or {}
        fields = {
            "method": scope.get("method"),
            "route": route,
            "status": status,
            "outcome": state.get("outcome", "ok" if status < 400 else "error"),
            "duration_ms": round(duration_s * 1000, 1),
            "account_id": state.get("account_id", context.get("account_id")),
        }
        if "error_type" in context:
            fields["error_type"] = context["error_type"]
        if status >= 500:
            _log.error("http.request", **fields)
        else:
            _log.info("http.request", **fields)


class BodyLimit:
    """Refuses a request body longer than ``max_bytes`` with 413 while it streams in.

    The declared ``Content-Length`` is refused at the first read, a chunked body as soon as it has
    grown past the limit: nobody, authenticated or not, makes the process hold a large body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> HTTPException:
        # An HTTPException, which FastAPI lets through its body parsing to the envelope's handler.
        return HTTPException(413, f"The request body is larger than {self.max_bytes} bytes.")


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """A query string may hold a one-time code and state (the OAuth callback): keep it out of traces."""
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes: dict[str, Any] = dict(getattr(span, "attributes", None) or {})
    for key, value in attributes.items():
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    for key in _QUERY_ATTRIBUTES:
        if key in attributes:
            span.set_attribute(key, "")


def instrument_api(app: FastAPI, tracer_provider: TracerProvider | None = None) -> None:
    """A server span per request (probes excepted), child of the caller's ``traceparent``."""
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=",".join(path.lstrip("/") for path in QUIET_PATHS),
        server_request_hook=_without_query,
        exclude_spans=["receive", "send"],
    )

"""One log line per HTTP request: route, status, outcome, duration and account, never a query string."""

from __future__ import annotations

import re
import time
from typing import Any, Final

import structlog
from contracts.runtime.logging import get_logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.entrypoints.metrics import HTTP_REQUESTS

_ACCOUNT_IN_PATH: Final = re.compile(r"^/v1/accounts/([^/]{1,128})/")
#: Probes are polled constantly; a line each would drown the requests that matter.
_QUIET_PATHS: Final = frozenset({"/livez", "/readyz", "/metrics"})

_log = get_logger("connector.http")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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

        with structlog.contextvars.bound_contextvars(**context):
            try:
                await self.app(scope, receive, send_with_status)
            except Exception as error:
                context["error_type"] = type(error).__name__
                raise
            finally:
                self._record(scope, status, time.perf_counter() - started, context)

    @staticmethod
    def _record(scope: Scope, status: int, duration_s: float, context: dict[str, Any]) -> None:
        path: str = scope.get("path", "")
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        HTTP_REQUESTS.labels(method=scope.get("method", ""), route=route, status=str(status)).observe(
            duration_s
        )
        if path in _QUIET_PATHS:
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

"""Test control shared by both fakes: fault injection, request statistics, data and settings.

Everything lives under `/_sandbox/` so tests running in other processes can drive a fake over
HTTP. `SandboxMiddleware` applies scheduled faults before the fake's own routes see a request,
stamps `Request-Id` (Stripe) and counts every request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_sandbox"
CURRENT_REQUEST: ContextVar[tuple[str, str | None] | None] = ContextVar("sandbox_request", default=None)
"""(request id, Idempotency-Key) of the API request being served, for the events it causes (Stripe)."""
FAULT_STATUSES = frozenset({400, 401, 402, 403, 404, 409, 429, 500, 502, 503, 504})


class FaultSpec(BaseModel):
    """What the next `count` requests whose path starts with `path_prefix` get instead of an answer."""

    path_prefix: str = Field(
        "/", description="Full request path prefix, or (Chargebee) the part after /api/v2"
    )
    count: int = Field(1, ge=1, le=1_000_000)
    method: str | None = Field(None, description="Only requests with this HTTP method (default: any)")
    status: int | None = Field(None, description="Answer this status with the processor's error JSON")
    delay_s: float = Field(0.0, ge=0, le=600, description="Wait this long first (then answer normally)")
    close_connection: bool = Field(False, description="Drop the connection mid-response")
    retry_after_s: int | None = Field(None, ge=0, description="Send Retry-After with the error")
    should_retry: bool | None = Field(None, description="Stripe: send Stripe-Should-Retry with the error")
    message: str | None = None
    body: dict[str, Any] | None = Field(None, description="Exact JSON body to answer instead of the default")
    headers: dict[str, str] = Field(default_factory=dict)


class DeleteRequest(BaseModel):
    """Objects to drop from every list (Stripe) or mark deleted (Chargebee)."""

    resource: str
    ids: list[str]
    account: str | None = Field(None, description="Stripe account id (default: the primary account)")
    site: str | None = Field(None, description="Chargebee site (default: the primary site)")


@dataclass
class Fault:
    id: str
    spec: FaultSpec
    remaining: int
    served: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "remaining": self.remaining, "served": self.served, **self.spec.model_dump()}


@dataclass
class RequestStats:
    started_at: float = field(default_factory=time.time)
    requests_total: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint_status: dict[str, Counter[str]] = field(default_factory=dict)
    by_scope: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    rate_limited_by_reason: Counter[str] = field(default_factory=Counter)
    faults_served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_request_at: float | None = None
    last_request_at: float | None = None
    #: Requests answered per endpoint per whole second since the first request: how evenly a
    #: client used its rate limit over a run.
    timeline: dict[str, Counter[int]] = field(default_factory=dict)

    def begin(self) -> None:
        now = time.time()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.first_request_at = self.first_request_at or now
        self.last_request_at = now

    def end(self, endpoint: str, status: int | None) -> None:
        self.in_flight -= 1
        self.requests_total += 1
        label = str(status) if status is not None else "aborted"
        self.by_endpoint[endpoint] += 1
        second = int(time.time() - (self.first_request_at or self.started_at))
        self.timeline.setdefault(endpoint, Counter())[second] += 1
        self.by_status[label] += 1
        self.by_endpoint_status.setdefault(endpoint, Counter())[label] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "requests_total": self.requests_total,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "by_endpoint_status": {k: dict(v) for k, v in self.by_endpoint_status.items()},
            "by_scope": dict(self.by_scope),
            "rate_limited": self.rate_limited,
            "rate_limited_by_reason": dict(self.rate_limited_by_reason),
            "faults_served": self.faults_served,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "timeline": {name: dict(sorted(seconds.items())) for name, seconds in self.timeline.items()},
        }


class ProcessorHooks(Protocol):
    """What a fake provides to the shared control API."""

    def error_body(self, status: int, message: str | None, path: str) -> dict[str, Any]: ...

    def fault_headers(self, spec: FaultSpec) -> dict[str, str]: ...

    def api_path(self, path: str) -> str:
        """The path relative to the API root (Chargebee: after /sites/{site}/api/v2)."""
        ...

    def delete_objects(self, scope: str | None, resource: str, ids: list[str]) -> dict[str, Any]: ...

    def current_settings(self) -> dict[str, Any]: ...

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]: ...

    def reset_data(self) -> None: ...


class SandboxControl:
    """Mutable test state of one fake server."""

    def __init__(self, hooks: ProcessorHooks, *, request_id_header: str | None) -> None:
        self.hooks = hooks
        self.request_id_header = request_id_header
        self.faults: list[Fault] = []
        self.stats = RequestStats()
        self._fault_ids = itertools.count(1)
        #: More counters shown by `GET /_sandbox/stats` under their name (the webhook sender's).
        self.extra_stats: dict[str, Callable[[], dict[str, Any]]] = {}

    def add_fault(self, spec: FaultSpec) -> Fault:
        if spec.status is None and spec.delay_s == 0 and not spec.close_connection:
            raise ValueError("a fault needs a status, a delay_s or close_connection")
        if spec.status is not None and spec.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
        fault = Fault(f"fault_{next(self._fault_ids)}", spec, spec.count)
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        relative = self.hooks.api_path(path)
        for fault in self.faults:
            spec = fault.spec
            if spec.method and spec.method.upper() != method:
                continue
            if not (path.startswith(spec.path_prefix) or relative.startswith(spec.path_prefix)):
                continue
            fault.remaining -= 1
            fault.served += 1
            if fault.remaining <= 0:
                self.faults.remove(fault)
            return fault
        return None

    def reset_stats(self) -> None:
        self.stats = RequestStats()


def new_request_id() -> str:
    return "req_" + secrets.token_urlsafe(10).replace("-", "a").replace("_", "b")


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("path", "")
    return f"{scope.get('method', '')} {path}"


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, control: SandboxControl) -> None:
        self.app = app
        self.control = control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        control = self.control
        header_name = control.request_id_header
        request_id = new_request_id()
        status: list[int] = []

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                if header_name:
                    headers = list(message.get("headers", []))
                    headers.append((header_name.lower().encode(), request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        path: str = scope.get("path", "")
        if path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send_with_id)
            return
        stats = control.stats
        stats.begin()
        idempotency_key = next(
            (v.decode() for k, v in scope.get("headers", []) if k.lower() == b"idempotency-key"), None
        )
        token = CURRENT_REQUEST.set((request_id, idempotency_key) if header_name else None)
        try:
            fault = control.take_fault(scope.get("method", "GET"), path)
            if fault is not None:
                stats.faults_served += 1
                spec = fault.spec
                if spec.delay_s:
                    await asyncio.sleep(spec.delay_s)
                if spec.close_connection:
                    await _close_mid_response(send_with_id)
                    return
                if spec.status is not None:
                    await self._send_error(spec, path, send_with_id)
                    return
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT_REQUEST.reset(token)
            stats.end(_route_label(scope), status[0] if status else None)

    async def _send_error(self, spec: FaultSpec, path: str, send: Send) -> None:
        assert spec.status is not None
        hooks = self.control.hooks
        body = spec.body if spec.body is not None else hooks.error_body(spec.status, spec.message, path)
        headers = {"content-type": "application/json", **hooks.fault_headers(spec), **spec.headers}
        if spec.retry_after_s is not None:
            headers["retry-after"] = str(spec.retry_after_s)
        payload = json.dumps(body).encode()
        headers["content-length"] = str(len(payload))
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": spec.status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})


async def _close_mid_response(send: Send) -> None:
    """Promise a body, send part of it and stop: the server then closes the connection."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"object": "list", "data": [', "more_body": True})


def install_control(app: FastAPI, control: SandboxControl) -> None:
    """Add the `/_sandbox/` routes and the fault/stats middleware to a fake's app."""
    app.include_router(admin_router(control))
    app.add_middleware(SandboxMiddleware, control=control)


def admin_router(control: SandboxControl) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox control"])

    @router.post("/faults", status_code=201)
    async def add_fault(spec: FaultSpec) -> dict[str, Any]:
        try:
            return control.add_fault(spec).as_json()
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    @router.get("/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": [f.as_json() for f in control.faults]}

    @router.delete("/faults")
    async def clear_faults() -> dict[str, Any]:
        cleared = len(control.faults)
        control.faults.clear()
        return {"cleared": cleared}

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        extra = {name: counters() for name, counters in control.extra_stats.items()}
        return {**control.stats.as_json(), **extra}

    @router.delete("/stats")
    async def reset_stats() -> dict[str, Any]:
        control.reset_stats()
        return control.stats.as_json()

    @router.post("/stats/reset")
    async def reset_stats_post() -> dict[str, Any]:
        control.reset_stats()
        return control.stats.as_json()

    @router.post("/delete")
    async def delete_objects(request: DeleteRequest) -> JSONResponse:
        try:
            result = control.hooks.delete_objects(
                request.account or request.site, request.resource, request.ids
            )
        except KeyError as exc:
            return JSONResponse({"detail": str(exc.args[0])}, status_code=404)
        return JSONResponse(result)

    @router.get("/settings")
    async def get_settings() -> dict[str, Any]:
        return control.hooks.current_settings()

    @router.patch("/settings")
    async def patch_settings(changes: dict[str, Any]) -> JSONResponse:
        try:
            return JSONResponse(control.hooks.update_settings(changes))
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

    @router.post("/reset")
    async def reset_all() -> dict[str, Any]:
        control.faults.clear()
        control.reset_stats()
        control.hooks.reset_data()
        return {"reset": True}

    return router

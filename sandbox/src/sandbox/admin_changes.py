"""Control API to change a fake's data while it runs: `/_sandbox/objects/...` and `/_sandbox/clock`.

Same paths on both fakes (`account` names a Stripe account, `site` a Chargebee site; both default
to the primary one). Every change records the processor's event(s) and sends webhooks, exactly
as a change made through the processor's dashboard would. Answers `{object, events}` where
`events` are the events recorded, oldest first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandbox.admin import ADMIN_PREFIX
from sandbox.events import SandboxClock

Obj = dict[str, Any]


class Scope(BaseModel):
    account: str | None = Field(None, description="Stripe account id (default: the primary account)")
    site: str | None = Field(None, description="Chargebee site (default: the primary site)")


class CreateRequest(Scope):
    object: Obj = Field(
        default_factory=dict, description="Attributes of the new object (defaults fill the rest)"
    )
    like: str | None = Field(
        None, description="Copy this existing object (new id, new times) before applying `object`"
    )


class UpdateRequest(Scope):
    changes: Obj = Field(description="Top-level attributes to set (a nested object is replaced whole)")
    event_type: str | None = Field(None, description="Record this event type instead of the default update")


class CancelRequest(Scope):
    at_period_end: bool = Field(False, description="Cancel when the current period (term) ends")
    reason: str | None = Field(
        None, description="Stripe cancellation_details.reason / Chargebee cancel_reason_code"
    )
    feedback: str | None = None
    comment: str | None = None


class TouchRequest(Scope):
    count: int = Field(1, ge=1, le=100_000, description="Changes to make (objects are reused in turn)")
    changes: Obj = Field(default_factory=dict, description="Attributes to set on each (besides the marker)")
    mark: str | None = Field(
        None,
        description="Also set this top-level attribute to the change's number (0, 1, …) as a string, "
        "so a reader of the object can tell which change it shows (e.g. `name`)",
    )


class PayRequest(Scope):
    failed_attempts: int = Field(0, ge=0, le=20, description="Failed payment attempts before the outcome")
    succeed: bool = Field(True, description="False: only the failed attempts")


class ClockRequest(BaseModel):
    advance_s: float = Field(0.0, description="Move the fake's event clock forward (or back) by this much")
    reset: bool = Field(False, description="Back to the wall clock")


@dataclass(frozen=True)
class Touched:
    """One change of a burst: the object changed, its event, and when it was recorded (Unix seconds)."""

    object_id: str
    event_id: str
    at: float = field(default_factory=time.time)


class AdminError(Exception):
    """A refused control call: HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ObjectAdmin(Protocol):
    """What a fake implements so tests can change its data while it runs."""

    @property
    def clock(self) -> SandboxClock: ...

    def admin_create(
        self, scope: str | None, resource: str, fields: Obj, like: str | None
    ) -> tuple[Obj, list[Obj]]: ...

    def admin_update(
        self, scope: str | None, resource: str, object_id: str, changes: Obj, event_type: str | None
    ) -> tuple[Obj, list[Obj]]: ...

    def admin_delete(self, scope: str | None, resource: str, object_id: str) -> tuple[Obj, list[Obj]]: ...

    def admin_cancel(
        self, scope: str | None, object_id: str, request: CancelRequest
    ) -> tuple[Obj, list[Obj]]: ...

    def admin_reactivate(self, scope: str | None, object_id: str) -> tuple[Obj, list[Obj]]: ...

    def admin_pay(self, scope: str | None, object_id: str, request: PayRequest) -> tuple[Obj, list[Obj]]: ...

    def admin_touch(self, scope: str | None, resource: str, request: TouchRequest) -> list[Touched]:
        """`count` updates of existing objects: the object, event and instant of each."""
        ...


def _answer(result: tuple[Obj, list[Obj]], status: int = 200) -> JSONResponse:
    obj, events = result
    return JSONResponse({"object": obj, "events": events}, status_code=status)


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, AdminError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    if isinstance(exc, KeyError):
        return JSONResponse({"detail": str(exc.args[0]) if exc.args else "not found"}, status_code=404)
    return JSONResponse({"detail": str(exc)}, status_code=422)


def changes_router(admin: ObjectAdmin) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox data changes"])

    @router.post("/objects/{resource}", status_code=201)
    async def create_object(resource: str, request: CreateRequest) -> JSONResponse:
        try:
            scope = request.account or request.site
            return _answer(admin.admin_create(scope, resource, request.object, request.like), 201)
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.post("/objects/{resource}/touch")
    async def touch_objects(resource: str, request: TouchRequest) -> JSONResponse:
        """A burst of updates: each existing object in turn gets a change and its event.

        `changed_at` is when each change was recorded (Unix seconds, sub-second), for lag measurements.
        """
        try:
            done = admin.admin_touch(request.account or request.site, resource, request)
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)
        return JSONResponse(
            {
                "touched": len(done),
                "object_ids": [t.object_id for t in done],
                "event_ids": [t.event_id for t in done],
                "changed_at": [round(t.at, 6) for t in done],
            }
        )

    @router.patch("/objects/{resource}/{object_id}")
    async def update_object(resource: str, object_id: str, request: UpdateRequest) -> JSONResponse:
        try:
            scope = request.account or request.site
            return _answer(
                admin.admin_update(scope, resource, object_id, request.changes, request.event_type)
            )
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.delete("/objects/{resource}/{object_id}")
    async def delete_object(
        resource: str, object_id: str, account: str | None = None, site: str | None = None
    ) -> JSONResponse:
        try:
            return _answer(admin.admin_delete(account or site, resource, object_id))
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.post("/objects/subscriptions/{object_id}/cancel")
    async def cancel_subscription(object_id: str, request: CancelRequest) -> JSONResponse:
        try:
            return _answer(admin.admin_cancel(request.account or request.site, object_id, request))
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.post("/objects/subscriptions/{object_id}/reactivate")
    async def reactivate_subscription(object_id: str, request: Scope) -> JSONResponse:
        try:
            return _answer(admin.admin_reactivate(request.account or request.site, object_id))
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.post("/objects/invoices/{object_id}/pay")
    async def pay_invoice(object_id: str, request: PayRequest) -> JSONResponse:
        try:
            return _answer(admin.admin_pay(request.account or request.site, object_id, request))
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            return _error(exc)

    @router.get("/clock")
    async def get_clock() -> dict[str, float]:
        return {"now": admin.clock.now(), "offset_s": admin.clock.offset_s}

    @router.post("/clock")
    async def move_clock(request: ClockRequest) -> dict[str, float]:
        if request.reset:
            admin.clock.reset()
        admin.clock.advance(request.advance_s)
        return {"now": admin.clock.now(), "offset_s": admin.clock.offset_s}

    return router

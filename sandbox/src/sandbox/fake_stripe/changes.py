"""Every change to a fake Stripe object goes through `StripeChanges.record_change`.

It stores the new state, appends a Stripe event (`customer.updated`, with `previous_attributes`)
to the account's event log and hands the event to the listeners (the webhook sender). Writes of
the API and of the control API both use it, so `/v1/events` and webhooks see every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.admin import CURRENT_REQUEST
from sandbox.collection import Collection, Obj
from sandbox.events import EventLog, IdGenerator, SandboxClock

STRIPE_API_VERSION = "2026-10-28.endive"
EVENT_RETENTION_S = 30 * 86_400
"""Stripe guarantees access to events for 30 days; older ones leave `/v1/events`."""

EVENT_PREFIX = {
    "customers": "customer",
    "subscriptions": "customer.subscription",
    "invoices": "invoice",
    "coupons": "coupon",
    "prices": "price",
    "products": "product",
    "plans": "plan",
}

EventListener = Callable[[str, Obj], None]
"""Called with (account id, event) for every new event, in order, without blocking."""

UNSET: Any = object()
"""`previous` left out: the stored state is the previous one."""


@dataclass(frozen=True)
class RequestInfo:
    """The API request behind a change (`request` of the event); None for control-API changes."""

    id: str | None = None
    idempotency_key: str | None = None


def current_request() -> RequestInfo:
    """The API request being served (its id and Idempotency-Key); empty for control-API changes."""
    found = CURRENT_REQUEST.get()
    return RequestInfo() if found is None else RequestInfo(found[0], found[1])


def previous_attributes(before: Obj, after: Obj) -> Obj:
    """Top-level attributes whose value changed, with their old value (like `data.previous_attributes`)."""
    changed: Obj = {}
    for key in before.keys() | after.keys():
        if before.get(key) != after.get(key):
            changed[key] = before.get(key)
    return changed


class StripeChanges:
    """Event logs of every account, and the single way objects change."""

    def __init__(
        self,
        collections: Callable[[str], dict[str, Collection]],
        *,
        clock: SandboxClock | None = None,
        retention_s: int = EVENT_RETENTION_S,
    ) -> None:
        self._collections = collections
        self.clock = clock or SandboxClock()
        self.retention_s = retention_s
        self.logs: dict[str, EventLog] = {}
        self.listeners: list[EventListener] = []
        #: How many webhook endpoints will receive an event (set by the webhook sender).
        self.endpoint_count: Callable[[str, Obj], int] = lambda _scope, _event: 0
        self._ids = IdGenerator()
        self._lock = threading.RLock()

    def log(self, account_id: str) -> EventLog:
        found = self.logs.get(account_id)
        if found is None:
            found = self.logs[account_id] = EventLog("created")
        return found

    def oldest_kept(self) -> int:
        """Events created before this second are no longer listed or retrievable."""
        return int(self.clock.now()) - self.retention_s

    def reset(self) -> None:
        with self._lock:
            self.logs.clear()
            self.clock.reset()

    # --- the one way to change an object ------------------------------------------------------
    def record_change(
        self,
        account_id: str,
        resource: str,
        obj: Obj,
        *,
        event_type: str | None = None,
        previous: Obj | None = UNSET,
        request: RequestInfo | None = None,
    ) -> Obj:
        """Store `obj` as the current state of its object and record the event; returns the event.

        The event type defaults to `<object>.created` for a new object and `<object>.updated`
        otherwise (`previous` defaults to the stored state; `previous_attributes` is their diff).
        Never mutate a stored object: pass a new dict.
        """
        with self._lock:
            collection = self._collections(account_id)[resource]
            before = collection.get(str(obj["id"])) if previous is UNSET else previous
            collection.replace(obj)
            prefix = EVENT_PREFIX[resource]
            kind = event_type or (f"{prefix}.created" if before is None else f"{prefix}.updated")
            changed = (
                previous_attributes(before, obj) if before is not None and kind.endswith(".updated") else None
            )
            return self.record_event(account_id, kind, obj, previous=changed, request=request)

    def record_deletion(
        self, account_id: str, resource: str, object_id: str, *, request: RequestInfo | None = None
    ) -> Obj | None:
        """Remove the object from every list and record `<object>.deleted`; None if it was not there."""
        with self._lock:
            collection = self._collections(account_id)[resource]
            obj = collection.get(object_id)
            if obj is None:
                return None
            collection.remove([object_id])
            return self.record_event(account_id, f"{EVENT_PREFIX[resource]}.deleted", obj, request=request)

    def record_event(
        self,
        account_id: str,
        event_type: str,
        obj: Obj,
        *,
        previous: Obj | None = None,
        request: RequestInfo | None = None,
    ) -> Obj:
        """Append an event about `obj` (already stored) and notify the listeners; returns it."""
        with self._lock:
            log = self.log(account_id)
            data: Obj = {"object": obj}
            if previous is not None:
                data["previous_attributes"] = previous
            req = request or current_request()
            event: Obj = {
                "id": self._ids.new("evt_1", 13),
                "object": "event",
                "api_version": STRIPE_API_VERSION,
                "created": log.next_time(self.clock.now()),
                "data": data,
                "livemode": bool(obj.get("livemode", False)),
                "pending_webhooks": 0,
                "request": {"id": req.id, "idempotency_key": req.idempotency_key},
                "type": event_type,
            }
            event["pending_webhooks"] = self.endpoint_count(account_id, event)
            log.append(event)
            for listener in self.listeners:
                listener(account_id, event)
            return event

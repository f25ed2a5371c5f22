"""Every change to a fake Chargebee object goes through `ChargebeeChanges.record_change`.

It stamps the new state with `updated_at` and a growing `resource_version` (milliseconds), stores
it, appends a Chargebee event (`customer_changed`, content `{"customer": {...}}`) to the site's
event log and hands the event to the listeners (the webhook sender).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sandbox.collection import Collection, Obj
from sandbox.events import EventLog, IdGenerator, SandboxClock

# resource → (created, changed, deleted) event types
EVENT_TYPES: dict[str, tuple[str, str, str]] = {
    "customers": ("customer_created", "customer_changed", "customer_deleted"),
    "subscriptions": ("subscription_created", "subscription_changed", "subscription_deleted"),
    "invoices": ("invoice_generated", "invoice_updated", "invoice_deleted"),
    "coupons": ("coupon_created", "coupon_updated", "coupon_deleted"),
    "plans": ("plan_created", "plan_updated", "plan_deleted"),
    "addons": ("addon_created", "addon_updated", "addon_deleted"),
    "items": ("item_created", "item_updated", "item_deleted"),
    "item_prices": ("item_price_created", "item_price_updated", "item_price_deleted"),
}
OBJECT_NAMES = {
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "coupons": "coupon",
    "plans": "plan",
    "addons": "addon",
    "items": "item",
    "item_prices": "item_price",
}
SOFT_DELETED = frozenset({"customers", "subscriptions", "invoices", "plans", "addons"})
"""Resources Chargebee keeps with `deleted: true` (listed with include_deleted=true)."""

EventListener = Callable[[str, Obj], None]
"""Called with (site, event) for every new event, in order, without blocking."""

UNSET: Any = object()
"""`previous` left out: the stored state is the previous one."""


def compact(obj: Obj) -> Obj:
    """Chargebee leaves attributes without a value out of its JSON."""
    return {k: v for k, v in obj.items() if v is not None}


class ChargebeeChanges:
    """Event logs of every site, and the single way objects change."""

    def __init__(
        self, collections: Callable[[str], dict[str, Collection]], *, clock: SandboxClock | None = None
    ) -> None:
        self._collections = collections
        self.clock = clock or SandboxClock()
        self.logs: dict[str, EventLog] = {}
        self.listeners: list[EventListener] = []
        #: How many webhook endpoints will receive an event (set by the webhook sender).
        self.endpoint_count: Callable[[str, Obj], int] = lambda _scope, _event: 0
        self._ids = IdGenerator()
        self._lock = threading.RLock()

    def log(self, site: str) -> EventLog:
        found = self.logs.get(site)
        if found is None:
            found = self.logs[site] = EventLog("occurred_at")
        return found

    def reset(self) -> None:
        with self._lock:
            self.logs.clear()
            self.clock.reset()

    def stamp(self, before: Obj | None, after: Obj) -> Obj:
        """`after` with `updated_at` now and a `resource_version` above the previous one."""
        now = self.clock.now()
        version = int(now * 1000)
        if before is not None:
            version = max(version, int(before.get("resource_version") or 0) + 1)
        return compact(
            {
                **after,
                "updated_at": max(int(now), int((before or {}).get("updated_at") or 0)),
                "resource_version": version,
            }
        )

    # --- the one way to change an object ------------------------------------------------------
    def record_change(
        self,
        site: str,
        resource: str,
        obj: Obj,
        *,
        event_type: str | None = None,
        source: str = "admin_console",
        previous: Obj | None = UNSET,
        extra_content: Obj | None = None,
    ) -> Obj:
        """Stamp and store `obj` as the current state of its object and record the event; returns the event.

        The event type defaults to `<object>_created` for a new object and the resource's update
        event (`customer_changed`, `invoice_updated`, ...) otherwise. `source` is `admin_console`
        for control-API changes and `api` for API writes. Never mutate a stored object: pass a new dict.
        """
        with self._lock:
            collection = self._collections(site)[resource]
            before = collection.get(str(obj["id"])) if previous is UNSET else previous
            stored = self.stamp(before, obj)
            collection.replace(stored)
            created, changed, _ = EVENT_TYPES[resource]
            kind = event_type or (created if before is None else changed)
            return self.record_event(
                site, kind, self.content(site, resource, stored, extra_content), source=source
            )

    def record_deletion(
        self, site: str, resource: str, object_id: str, *, source: str = "admin_console"
    ) -> Obj | None:
        """Delete the object (soft for customers, subscriptions, invoices, plans, addons) and record it."""
        with self._lock:
            collection = self._collections(site)[resource]
            obj = collection.get(object_id)
            if obj is None or obj.get("deleted"):
                return None
            stored = self.stamp(obj, {**obj, "deleted": True})
            if resource in SOFT_DELETED:
                collection.replace(stored)
            else:
                collection.remove([object_id])
            kind = EVENT_TYPES[resource][2]
            return self.record_event(site, kind, self.content(site, resource, stored, None), source=source)

    def content(self, site: str, resource: str, obj: Obj, extra: Obj | None) -> Obj:
        """Event content: the object under its name; a subscription's customer comes along."""
        content: Obj = {OBJECT_NAMES[resource]: obj}
        if resource == "subscriptions":
            customers = self._collections(site)["customers"]
            customer = customers.get(str(obj.get("customer_id", "")))
            if customer is not None:
                content["customer"] = customer
        if extra:
            content.update(extra)
        return content

    def record_event(self, site: str, event_type: str, content: Obj, *, source: str = "admin_console") -> Obj:
        """Append an event with this content (objects already stored) and notify the listeners."""
        with self._lock:
            log = self.log(site)
            event: Obj = {
                "id": self._ids.new("ev_", 6),
                "occurred_at": log.next_time(self.clock.now()),
                "source": source,
                "object": "event",
                "api_version": "v2",
                "content": content,
                "event_type": event_type,
                "webhook_status": "not_configured",
            }
            if self.endpoint_count(site, event):
                event["webhook_status"] = "scheduled"
            log.append(event)
            for listener in self.listeners:
                listener(site, event)
            return event

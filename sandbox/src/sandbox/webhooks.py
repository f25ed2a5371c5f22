"""Webhook sender shared by both fakes: endpoints registered through `/_sandbox/webhooks`.

Each recorded event is offered to every endpoint; an endpoint that wants it queues a delivery and
its worker threads POST it, so recording a change never waits on the network. Like the
processors, a delivery that gets no 2xx (or no answer) is retried a few times with backoff.
Options per endpoint make the delivery misbehave on purpose: drop some, send some twice, hold
some back and release them in reverse order, delay all.

The processor-specific part (which events an endpoint gets, body and headers: Stripe's signature,
Chargebee's Basic credentials) comes from a `WebhookFlavor`.
"""

from __future__ import annotations

import asyncio
import heapq
import http.client
import itertools
import random
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandbox.admin import ADMIN_PREFIX

Obj = dict[str, Any]
MAX_LOGGED_DELIVERIES = 2_000


class EndpointOptions(BaseModel):
    """How deliveries to one endpoint misbehave (all off by default), and how they are retried."""

    drop_ratio: float = Field(0.0, ge=0, le=1, description="Share of events never delivered")
    drop_next: int = Field(0, ge=0, description="Never deliver the next N events")
    repeat_ratio: float = Field(0.0, ge=0, le=1, description="Share of events delivered twice")
    repeat_next: int = Field(0, ge=0, description="Deliver the next N events twice")
    hold_next: int = Field(
        0, ge=0, description="Hold the next N events, then deliver them newest first (reordered)"
    )
    delay_s: float = Field(0.0, ge=0, le=600, description="Wait this long before each delivery")
    max_attempts: int = Field(4, ge=1, le=20, description="Attempts per delivery (first one included)")
    retry_backoff_s: float = Field(0.5, ge=0, le=60, description="Wait before the first retry, doubled after")
    timeout_s: float = Field(5.0, gt=0, le=120)
    concurrency: int = Field(1, ge=1, le=64, description="Deliveries in flight at once (1 keeps order)")
    seed: int | None = Field(None, description="Seed of drop_ratio/repeat_ratio draws")
    signature_time_offset_s: int = Field(
        0, description="Stripe: sign with a timestamp this far from now (expired-signature tests)"
    )


class EndpointSpec(EndpointOptions):
    """A webhook endpoint: where to POST and what it receives."""

    url: str = Field(description="http(s) URL the events are POSTed to")
    secret: str | None = Field(None, description="Stripe: the endpoint's signing secret (whsec_…)")
    old_secret: str | None = Field(
        None, description="Stripe: also sign with this one (a second v1, as during a secret roll)"
    )
    username: str | None = Field(None, description="Chargebee: HTTP Basic user name")
    password: str | None = Field(None, description="Chargebee: HTTP Basic password")
    scopes: list[str] | None = Field(
        None,
        description="Stripe accounts / Chargebee sites whose events it gets (default: Stripe: the "
        "accounts connected to the platform through OAuth; Chargebee: every site)",
    )
    enabled_events: list[str] = Field(default_factory=lambda: ["*"], description="Event types, * wildcards")


@dataclass
class EndpointStats:
    events_offered: int = 0
    queued: int = 0
    delivered: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    dropped: int = 0
    repeated: int = 0
    held: int = 0
    by_status: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> Obj:
        return {
            "events_offered": self.events_offered,
            "queued": self.queued,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "gave_up": self.gave_up,
            "dropped": self.dropped,
            "repeated": self.repeated,
            "held": self.held,
            "by_status": dict(self.by_status),
        }


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    scope: str = field(compare=False)
    event: Obj = field(compare=False)
    body: bytes | None = field(default=None, compare=False)
    """Serialised by the worker on the first attempt (recording a change stays cheap)."""
    attempt: int = field(default=0, compare=False)


class WebhookFlavor(Protocol):
    """What differs between Stripe and Chargebee webhooks."""

    def validate(self, spec: EndpointSpec) -> None:
        """Raise ValueError when the spec lacks what this processor needs."""
        ...

    def wants(self, spec: EndpointSpec, scope: str, event: Obj) -> bool: ...

    def body(self, scope: str, event: Obj) -> bytes: ...

    def headers(self, spec: EndpointSpec, body: bytes) -> dict[str, str]:
        """Headers of one attempt (Stripe signs each attempt with a fresh timestamp)."""
        ...


def type_matches(patterns: list[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


class WebhookEndpoint:
    """One endpoint: its queue, held deliveries, counters and worker threads."""

    def __init__(self, endpoint_id: str, spec: EndpointSpec, flavor: WebhookFlavor) -> None:
        self.id = endpoint_id
        self.spec = spec
        self.flavor = flavor
        self.stats = EndpointStats()
        self.deliveries: list[Obj] = []
        self._queue: list[Delivery] = []
        self._held: list[Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._random = random.Random(spec.seed)
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"webhooks {endpoint_id}", daemon=True)
            for _ in range(spec.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def as_json(self) -> Obj:
        shown = self.spec.model_dump(exclude={"secret", "old_secret", "password"})
        return {
            "id": self.id,
            **shown,
            "has_secret": self.spec.secret is not None,
            "stats": self.stats.as_json(),
            "pending": len(self._queue) + self._busy,
            "holding": len(self._held),
        }

    def configure(self, changes: Obj) -> None:
        with self._cond:
            merged = {**self.spec.model_dump(), **changes}
            spec = EndpointSpec.model_validate(merged)
            if spec.concurrency != self.spec.concurrency:
                raise ValueError("concurrency cannot change; register a new endpoint")
            self.flavor.validate(spec)
            self.spec = spec
            if "seed" in changes:
                self._random = random.Random(spec.seed)

    # --- intake (called while recording an event: never blocks on the network) ----------------
    def offer(self, scope: str, event: Obj) -> None:
        spec = self.spec
        if not type_matches(spec.enabled_events, str(event.get("type") or event.get("event_type"))):
            return
        if not self.flavor.wants(spec, scope, event):
            return
        kind = str(event.get("type") or event.get("event_type"))
        with self._cond:
            self.stats.events_offered += 1
            if self._take("drop_next") or (spec.drop_ratio and self._random.random() < spec.drop_ratio):
                self.stats.dropped += 1
                self._log(str(event["id"]), kind, 0, "dropped")
                return
            copies = 1
            if self._take("repeat_next") or (spec.repeat_ratio and self._random.random() < spec.repeat_ratio):
                copies = 2
                self.stats.repeated += 1
            for _ in range(copies):
                delivery = Delivery(0.0, next(self._seq), str(event["id"]), kind, scope, event)
                if self._take("hold_next"):
                    self._held.append(delivery)
                    self.stats.held += 1
                    if self.spec.hold_next == 0:
                        self._release_held()
                else:
                    self._push(delivery, time.monotonic() + spec.delay_s)

    def _take(self, option: str) -> bool:
        left = int(getattr(self.spec, option))
        if left <= 0:
            return False
        self.spec = self.spec.model_copy(update={option: left - 1})
        return True

    def _push(self, delivery: Delivery, due: float) -> None:
        delivery.due = due
        delivery.seq = next(self._seq)
        heapq.heappush(self._queue, delivery)
        self.stats.queued += 1
        self._cond.notify()

    def _release_held(self) -> None:
        now = time.monotonic() + self.spec.delay_s
        held, self._held = self._held, []
        for delivery in reversed(held):
            self._push(delivery, now)

    def release(self) -> int:
        """Send what is held now, newest first."""
        with self._cond:
            count = len(self._held)
            self.spec = self.spec.model_copy(update={"hold_next": 0})
            self._release_held()
            return count

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued or in flight (held deliveries do not count)."""
        with self._cond:
            return not self._queue and not self._busy

    # --- delivery ------------------------------------------------------------------------------
    def _log(self, event_id: str, kind: str, attempt: int, outcome: str) -> None:
        self.deliveries.append({"event": event_id, "type": kind, "attempt": attempt, "outcome": outcome})
        if len(self.deliveries) > MAX_LOGGED_DELIVERIES:
            del self.deliveries[: len(self.deliveries) - MAX_LOGGED_DELIVERIES]

    def _next(self) -> Delivery | None:
        with self._cond:
            while not self._closed:
                if self._queue:
                    wait = self._queue[0].due - time.monotonic()
                    if wait <= 0:
                        self._busy += 1
                        return heapq.heappop(self._queue)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _work(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while True:
            delivery = self._next()
            if delivery is None:
                return
            delivery.attempt += 1
            status, connection = self._post(delivery, connection)
            with self._cond:
                self._busy -= 1
                self.stats.attempts += 1
                label = str(status) if status is not None else "no_answer"
                self.stats.by_status[label] += 1
                ok = status is not None and 200 <= status < 300
                if ok:
                    self.stats.delivered += 1
                    self._log(delivery.event_id, delivery.event_type, delivery.attempt, "delivered")
                else:
                    self.stats.failed_attempts += 1
                    if delivery.attempt >= self.spec.max_attempts:
                        self.stats.gave_up += 1
                        self._log(delivery.event_id, delivery.event_type, delivery.attempt, "gave_up")
                    else:
                        self._log(delivery.event_id, delivery.event_type, delivery.attempt, f"retry:{label}")
                        backoff = self.spec.retry_backoff_s * 2 ** (delivery.attempt - 1)
                        self._push(delivery, time.monotonic() + backoff)
                self._cond.notify_all()

    def _post(
        self, delivery: Delivery, connection: http.client.HTTPConnection | None
    ) -> tuple[int | None, http.client.HTTPConnection | None]:
        parts = urllib.parse.urlsplit(self.spec.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if delivery.body is None:
            delivery.body = self.flavor.body(delivery.scope, delivery.event)
        headers = {**self.flavor.headers(self.spec, delivery.body), "Content-Length": str(len(delivery.body))}
        for fresh in (False, True):
            if connection is None or fresh:
                if connection is not None:
                    connection.close()
                kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                connection = kind(parts.hostname or "127.0.0.1", parts.port, timeout=self.spec.timeout_s)
            try:
                connection.request("POST", path, body=delivery.body, headers=headers)
                response = connection.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if fresh:
                    break  # a kept-alive connection closed under us: one retry on a fresh one
            except (OSError, http.client.HTTPException):
                break
            else:
                if response.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
                return response.status, connection
        if connection is not None:
            connection.close()
        return None, None


class WebhookSender:
    """The endpoints of one fake; `offer` is the event listener its change log calls."""

    def __init__(self, flavor: WebhookFlavor) -> None:
        self.flavor = flavor
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def offer(self, scope: str, event: Obj) -> None:
        for endpoint in list(self.endpoints.values()):
            endpoint.offer(scope, event)

    def count_for(self, scope: str, event: Obj) -> int:
        """Endpoints that will receive this event (Stripe's `pending_webhooks`)."""
        kind = str(event.get("type") or event.get("event_type"))
        return sum(
            1
            for e in list(self.endpoints.values())
            if type_matches(e.spec.enabled_events, kind) and self.flavor.wants(e.spec, scope, event)
        )

    def add(self, spec: EndpointSpec) -> WebhookEndpoint:
        parts = urllib.parse.urlsplit(spec.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http(s) URL")
        self.flavor.validate(spec)
        with self._lock:
            endpoint_id = f"we_{next(self._ids)}"
            endpoint = self.endpoints[endpoint_id] = WebhookEndpoint(endpoint_id, spec, self.flavor)
        return endpoint

    def remove(self, endpoint_id: str) -> None:
        endpoint = self.endpoints.pop(endpoint_id)
        endpoint.close()

    def clear(self) -> int:
        count = len(self.endpoints)
        for endpoint_id in list(self.endpoints):
            self.remove(endpoint_id)
        return count

    def totals(self) -> Obj:
        """Counters of every endpoint added up (for `/_sandbox/stats`)."""
        total: Counter[str] = Counter()
        for endpoint in list(self.endpoints.values()):
            for name, value in endpoint.stats.as_json().items():
                if isinstance(value, int):
                    total[name] += value
        return {"endpoints": len(self.endpoints), **dict(total)}


def webhooks_router(sender: WebhookSender) -> APIRouter:
    router = APIRouter(prefix=f"{ADMIN_PREFIX}/webhooks", tags=["sandbox webhooks"])

    def found(endpoint_id: str) -> WebhookEndpoint:
        endpoint = sender.endpoints.get(endpoint_id)
        if endpoint is None:
            raise KeyError(f"no such webhook endpoint: {endpoint_id}")
        return endpoint

    def missing(exc: KeyError) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @router.post("", status_code=201)
    async def add_endpoint(spec: EndpointSpec) -> JSONResponse:
        try:
            return JSONResponse(sender.add(spec).as_json(), status_code=201)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

    @router.get("")
    async def list_endpoints() -> Obj:
        return {
            "endpoints": [e.as_json() for e in list(sender.endpoints.values())],
            "totals": sender.totals(),
        }

    @router.delete("")
    async def remove_all() -> Obj:
        return {"removed": sender.clear()}

    @router.get("/{endpoint_id}")
    async def get_endpoint(endpoint_id: str, deliveries: bool = False) -> JSONResponse:
        try:
            endpoint = found(endpoint_id)
        except KeyError as exc:
            return missing(exc)
        body = endpoint.as_json()
        if deliveries:
            body["deliveries"] = list(endpoint.deliveries)
        return JSONResponse(body)

    @router.patch("/{endpoint_id}")
    async def configure(endpoint_id: str, changes: Obj) -> JSONResponse:
        try:
            endpoint = found(endpoint_id)
            endpoint.configure(changes)
        except KeyError as exc:
            return missing(exc)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return JSONResponse(endpoint.as_json())

    @router.post("/{endpoint_id}/release")
    async def release(endpoint_id: str) -> JSONResponse:
        try:
            return JSONResponse({"released": found(endpoint_id).release()})
        except KeyError as exc:
            return missing(exc)

    @router.post("/{endpoint_id}/drain")
    async def drain(endpoint_id: str, timeout_s: float = 30.0) -> JSONResponse:
        """Answer once nothing is queued or in flight (held deliveries aside), or after timeout_s."""
        try:
            endpoint = found(endpoint_id)
        except KeyError as exc:
            return missing(exc)
        deadline = time.monotonic() + min(timeout_s, 600.0)
        while not endpoint.idle() and time.monotonic() < deadline:  # noqa: ASYNC110 - workers are threads
            await asyncio.sleep(0.02)
        return JSONResponse({**endpoint.as_json(), "idle": endpoint.idle()})

    @router.delete("/{endpoint_id}")
    async def remove(endpoint_id: str) -> JSONResponse:
        try:
            sender.remove(endpoint_id)
        except KeyError as exc:
            return missing(exc)
        return JSONResponse({"removed": endpoint_id})

    return router

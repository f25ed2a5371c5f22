"""Request budgets per connected account, shared by every importer replica through MongoDB.

A budget hands out *time slots*: a bucket (an account, or one endpoint of it) allowing ``r``
requests a second gives out instants spaced ``1/r`` apart, never two the same, and each request
waits for its instant (GCRA: a "theoretical arrival time" per bucket that only moves forward). A
bucket that fell behind now may catch up by at most ``burst_s`` (a burst of ``burst_s × rate``
requests): without it, every scheduling hiccup of a busy process would be capacity lost for good,
and processors' limiters (token buckets) allow that much. A request with an endpoint limit takes
a slot of its endpoint's bucket and, once that instant is reached, one of the account's: taking the
account slot only when the request is ready keeps a busy endpoint from reserving, and wasting,
account slots it cannot use yet.

:class:`MongoRateBudget` keeps an account's arrival times in one document and reserves slots
with one atomic ``findAndModify`` (a pipeline update computed on the server's clock, so replicas
need no clock agreement and never share a slot). When the account, not the endpoint, is what
binds, one round trip takes both slots. A replica coalesces the waiters of a stage that queue up
while a reservation is in flight into the next one, and a trip leases a few slots beyond its
waiters, as many as the replica's pace of that stage will take in time, which its next requests of
that stage take without a trip.
:class:`LocalRateBudget` is the same algorithm in one process, for tests and baselines.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

RATE_BUDGETS_COLLECTION: Final = "rate_budgets"
#: How far a bucket may catch up on time it left unused, in seconds of its time line.
BURST_S: Final = 0.1
#: The account's own arrival time in its budget document (endpoints: ``e_<endpoint>``).
ACCOUNT_FIELD: Final = "tat"
#: Most slots reserved in one round trip.
MAX_SLOTS_PER_TRIP: Final = 100
#: Most slots a round trip reserves beyond its waiters, for this replica's next requests of the
#: stage. A leased slot is used once its instant comes (or up to ``burst_s`` after it, as an idle
#: bucket catches up) and dropped after that, so a trip leases only as many as the replica's own
#: recent pace of that stage will use in time (``_lease``): none for a stage it asks a few times a
#: second, where a leased slot would only expire, unused by it and denied to the other replicas.
LEASE_SLOTS: Final = 3
#: The replica's pace of a stage is its requests of the stage in this past window.
PACE_WINDOW_S: Final = 0.5
#: Creating a bucket's document can race with another replica creating it.
UPSERT_ATTEMPTS: Final = 3

BUDGET_STORE_OPERATIONS: Final = Counter(
    "importer_rate_budget_store_operations_total",
    "Round trips to the shared rate budget store (slot reservations and penalties)",
    ["operation"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per second allowed for one account, and per endpoint of it (``None``: no limit)."""

    per_s: float
    endpoint_per_s: float | None = None

    def __post_init__(self) -> None:
        if self.per_s <= 0 or (self.endpoint_per_s is not None and self.endpoint_per_s <= 0):
            raise ValueError("rates must be positive")


class RateBudget(Protocol):
    """Paces requests to a processor account across every replica."""

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        """Wait until a request to ``endpoint`` of the account may be sent.

        ``limits`` are the account's; without them the budget's default limits apply.
        """
        ...

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        """After a 429: no request to the account (or only to ``endpoint``) for ``retry_after_s``."""
        ...


def endpoint_bucket(account_key: str, endpoint: str) -> str:
    return f"{account_key}|{endpoint}"


class _SlotBudget:
    """The two-stage acquisition shared by both budgets; subclasses say how a slot is taken.

    ``clock`` and ``sleep`` default to the event loop's monotonic clock and ``asyncio.sleep``.
    """

    def __init__(
        self,
        default_limits: RateLimits,
        *,
        burst_s: float = BURST_S,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.default_limits = default_limits
        self.burst_s = max(burst_s, 0.0)
        self._clock = clock
        self._sleep = sleep

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        limits = limits or self.default_limits
        if limits.endpoint_per_s is not None:
            await self._wait_for_slot(endpoint_bucket(account_key, endpoint), 1.0 / limits.endpoint_per_s)
        await self._wait_for_slot(account_key, 1.0 / limits.per_s)

    async def _wait_for_slot(self, bucket: str, interval_s: float) -> None:
        instant = await self._slot(bucket, interval_s)
        delay = instant - self._now()
        if delay > 0:
            await self._sleep(delay)

    async def _slot(self, bucket: str, interval_s: float) -> float:
        """The instant (on ``_now``'s clock) at which the caller may send."""
        raise NotImplementedError


class LocalRateBudget(_SlotBudget):
    """The budget of one process: exact, free, and shared with no other replica."""

    def __init__(
        self,
        default_limits: RateLimits = RateLimits(100.0, 25.0),
        *,
        burst_s: float = BURST_S,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(default_limits, burst_s=burst_s, clock=clock, sleep=sleep)
        self._arrival: dict[str, float] = {}

    async def _slot(self, bucket: str, interval_s: float) -> float:
        slot = max(self._arrival.get(bucket, float("-inf")), self._now() - self.burst_s)
        self._arrival[bucket] = slot + interval_s
        return slot

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        bucket = account_key if endpoint is None else endpoint_bucket(account_key, endpoint)
        until = self._now() + max(retry_after_s, 0.0)
        self._arrival[bucket] = max(self._arrival.get(bucket, float("-inf")), until)


@dataclass(slots=True)
class _Queue:
    """One replica's waiters for one stage of one account, served one reservation at a time."""

    waiters: deque[asyncio.Future[tuple[float, bool]]] = field(default_factory=deque)
    reserving: asyncio.Task[None] | None = None
    #: Leased slots (instants on the replica's clock, ascending) no waiter has taken yet.
    stock: deque[float] = field(default_factory=deque)
    #: When this replica's latest requests of the stage came (its clock).
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=32))

    def fresh_stock(self, oldest: float) -> bool:
        """Whether a leased slot is left, dropping those older than ``oldest`` (past use)."""
        stock = self.stock
        while stock and stock[0] < oldest:
            stock.popleft()
        return bool(stock)


class MongoRateBudget(_SlotBudget):
    """The budget shared by all importer replicas: one document per account in ``rate_budgets``.

    The document holds the account's arrival time (``tat``) and one per endpoint (``e_<endpoint>``),
    so that one atomic update can take an endpoint slot and an account slot together: when the
    endpoint's next slot is no later than the account's, both are taken at the account's (one round
    trip, and no account time skipped); otherwise only the endpoint's, and the account's once that
    one is reached. Waiters of one stage that queue while a reservation is in flight go together in
    the next one.

    A trip may lease up to ``lease_slots`` more slots of the stage it reserves in (the endpoint's,
    in a trip that takes both), as many as the replica's pace of that stage takes while they are
    fresh (``_lease``): its next waiters of that stage take them in order, without a trip. They
    are the replica's as any reserved slot is (no other replica is given them), so leasing changes
    who waits how long, never how many requests an instant allows; a penalty drops this replica's
    leased slots of the penalised bucket.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        default_limits: RateLimits = RateLimits(100.0, 25.0),
        *,
        collection: str = RATE_BUDGETS_COLLECTION,
        burst_s: float = BURST_S,
        lease_slots: int = LEASE_SLOTS,
    ) -> None:
        super().__init__(default_limits, burst_s=burst_s)
        self._collection = db[collection]
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._lease_slots = max(lease_slots, 0)

    async def acquire(self, account_key: str, endpoint: str, *, limits: RateLimits | None = None) -> None:
        limits = limits or self.default_limits
        account_interval_s = 1.0 / limits.per_s
        if limits.endpoint_per_s is not None:
            instant, with_account = await self._queued(
                account_key, _endpoint_field(endpoint), 1.0 / limits.endpoint_per_s, account_interval_s
            )
            await self._sleep_until(instant)
            if with_account:
                return
        instant, _ = await self._queued(account_key, ACCOUNT_FIELD, account_interval_s, None)
        await self._sleep_until(instant)

    async def _sleep_until(self, instant: float) -> None:
        delay = instant - self._now()
        if delay > 0:
            await self._sleep(delay)

    async def _queued(
        self, account_key: str, slot_field: str, interval_s: float, account_interval_s: float | None
    ) -> tuple[float, bool]:
        """Wait for a reservation in ``slot_field``: the instant to send, and whether the account's
        slot came with it. ``account_interval_s`` offers to take the account's slot in the same trip.
        """
        queue = self._queues.setdefault((account_key, slot_field), _Queue())
        now = self._now()
        queue.arrivals.append(now)
        if not queue.waiters and queue.fresh_stock(now - self.burst_s):
            return queue.stock.popleft(), False
        waiter: asyncio.Future[tuple[float, bool]] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        if queue.reserving is None:
            queue.reserving = asyncio.create_task(
                self._serve(account_key, slot_field, queue, interval_s, account_interval_s)
            )
        return await waiter

    async def _serve(
        self,
        account_key: str,
        slot_field: str,
        queue: _Queue,
        interval_s: float,
        account_interval_s: float | None,
    ) -> None:
        try:
            while queue.waiters:
                # Waiters that queued during the last trip take what it leased, if still fresh.
                if queue.fresh_stock(self._now() - self.burst_s):
                    while queue.stock and queue.waiters:
                        waiter = queue.waiters.popleft()
                        if not waiter.done():  # a cancelled waiter's slot stays leased
                            waiter.set_result((queue.stock.popleft(), False))
                    continue
                batch = [queue.waiters.popleft() for _ in range(min(len(queue.waiters), MAX_SLOTS_PER_TRIP))]
                lease = self._lease(queue, interval_s)
                try:
                    if (
                        len(batch) == 1
                        and account_interval_s is not None
                        and not self._account_stocked(account_key)
                    ):
                        first_ms, now_ms, with_account = await self.reserve_endpoint_and_account(
                            account_key, slot_field, interval_s, account_interval_s, count=1 + lease
                        )
                    else:
                        first_ms, now_ms = await self.reserve_on_server(
                            account_key, slot_field, interval_s, len(batch) + lease
                        )
                        with_account = False
                except Exception as error:  # the store is unreachable: every waiter learns it
                    for waiter in (*batch, *queue.waiters):
                        if not waiter.done():
                            waiter.set_exception(error)
                    queue.waiters.clear()
                    return
                # Measured from when the answer arrived: the wait errs late by the return trip, never early.
                first = self._now() + max(first_ms - now_ms, 0.0) / 1000.0
                for index, waiter in enumerate(batch):
                    if not waiter.done():  # a cancelled waiter's slot is lost, never given twice
                        waiter.set_result((first + index * interval_s, index == 0 and with_account))
                queue.stock = deque(
                    first + index * interval_s for index in range(len(batch), len(batch) + lease)
                )
        finally:
            queue.reserving = None

    def _lease(self, queue: _Queue, interval_s: float) -> int:
        """Slots to lease beyond a trip's waiters: as many as the replica's pace of the stage uses
        fresh. Its requests come ``gap`` apart against slots ``interval_s`` apart, so the j-th
        leased slot is taken about ``j × (gap - interval_s)`` after its instant; leased are those
        taken within half the burst allowance (all of them when the replica asks faster than the
        bucket allows: its waiters queue and take them at once)."""
        if not self._lease_slots:
            return 0
        since = self._now() - PACE_WINDOW_S
        recent = sum(1 for at in queue.arrivals if at >= since)
        if recent < 2:
            return 0
        late_per_slot = PACE_WINDOW_S / recent - interval_s
        if late_per_slot <= 0:
            return self._lease_slots
        return min(self._lease_slots, int(self.burst_s / 2 / late_per_slot))

    def _account_stocked(self, account_key: str) -> bool:
        """Whether the account's stage has a fresh leased slot: then an endpoint's trip leaves the
        account's slot to it rather than taking one more."""
        queue = self._queues.get((account_key, ACCOUNT_FIELD))
        return queue is not None and queue.fresh_stock(self._now() - self.burst_s)

    def _catch_up_limit(self) -> dict[str, Any]:
        return {"$subtract": [{"$toLong": "$$NOW"}, self.burst_s * 1000.0]}

    async def reserve_on_server(
        self, account_key: str, slot_field: str, interval_s: float, count: int
    ) -> tuple[float, float]:
        """One atomic reservation of ``count`` slots ``interval_s`` apart in one arrival time.

        Returns the first slot and the server's clock at the reservation, both in epoch
        milliseconds: the slots are ``[first, first + count × interval)``, no other reservation's.
        """
        span_ms = count * interval_s * 1000.0
        arrival = {"$max": [{"$ifNull": [f"${slot_field}", 0]}, self._catch_up_limit()]}
        update = [
            {"$set": {"now": "$$NOW", "first": arrival}},
            {"$set": {slot_field: {"$add": ["$first", span_ms]}}},
        ]
        document = await self._find_and_update(account_key, update)
        return float(document["first"]), _epoch_ms(document["now"])

    async def reserve_endpoint_and_account(
        self,
        account_key: str,
        endpoint_field: str,
        endpoint_interval_s: float,
        account_interval_s: float,
        *,
        count: int = 1,
    ) -> tuple[float, float, bool]:
        """``count`` slots of the endpoint, the first with a slot of the account too when the
        endpoint is not the later one.

        Returns the first slot, the server's clock (epoch milliseconds) and whether the account's
        slot was taken with it: if not, the slot is the endpoint's only, and the account's is still
        to take. The endpoint's other slots follow ``endpoint_interval_s`` apart, the account's
        still to take for each.
        """
        catch_up = self._catch_up_limit()
        update = [
            {
                "$set": {
                    "now": "$$NOW",
                    "endpoint_next": {"$max": [{"$ifNull": [f"${endpoint_field}", 0]}, catch_up]},
                    "account_next": {"$max": [{"$ifNull": [f"${ACCOUNT_FIELD}", 0]}, catch_up]},
                }
            },
            {"$set": {"both": {"$lte": ["$endpoint_next", "$account_next"]}}},
            {"$set": {"first": {"$cond": ["$both", "$account_next", "$endpoint_next"]}}},
            {
                "$set": {
                    endpoint_field: {"$add": ["$first", count * endpoint_interval_s * 1000.0]},
                    ACCOUNT_FIELD: {
                        "$cond": [
                            "$both",
                            {"$add": ["$account_next", account_interval_s * 1000.0]},
                            {"$ifNull": [f"${ACCOUNT_FIELD}", 0]},
                        ]
                    },
                }
            },
            {"$unset": ["endpoint_next", "account_next"]},
        ]
        document = await self._find_and_update(account_key, update)
        return float(document["first"]), _epoch_ms(document["now"]), bool(document["both"])

    async def _find_and_update(self, account_key: str, update: list[Any]) -> dict[str, Any]:
        for _ in range(UPSERT_ATTEMPTS):
            BUDGET_STORE_OPERATIONS.labels("reserve").inc()
            try:
                document = await self._collection.find_one_and_update(
                    {"_id": account_key}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                # Two first reservations of an account raced to create its document: go again.
                continue
            if document is not None:
                return dict(document)
        raise RuntimeError(f"could not reserve a slot of rate budget {account_key}")

    async def penalize(self, account_key: str, retry_after_s: float, *, endpoint: str | None = None) -> None:
        slot_field = ACCOUNT_FIELD if endpoint is None else _endpoint_field(endpoint)
        queue = self._queues.get((account_key, slot_field))
        if queue is not None:
            queue.stock.clear()  # leased before the penalty: not to be used during it
        until = {"$add": [{"$toLong": "$$NOW"}, max(retry_after_s, 0.0) * 1000.0]}
        BUDGET_STORE_OPERATIONS.labels("penalize").inc()
        await self._collection.update_one(
            {"_id": account_key},
            [{"$set": {"now": "$$NOW", slot_field: {"$max": [{"$ifNull": [f"${slot_field}", 0]}, until]}}}],
            upsert=True,
        )


def _endpoint_field(endpoint: str) -> str:
    safe = "".join(char if char.isalnum() or char == "_" else "_" for char in endpoint)
    return f"e_{safe}"


def _epoch_ms(value: object) -> float:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp() * 1000.0
    return float(value)  # type: ignore[arg-type]

"""Rate budgets: slots spaced by the rate, endpoint before account, penalties after a 429.

The local budget runs on a fake clock. The MongoDB budget runs against a real MongoDB-wire server
and is checked on the slots the server reserved (epoch milliseconds), never on elapsed time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from contracts.runtime.metrics import REGISTRY
from importer.adapters.rate_budget import (
    RATE_BUDGETS_COLLECTION,
    LocalRateBudget,
    MongoRateBudget,
    RateLimits,
)
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


class FakeTime:
    """A clock that only moves when someone sleeps (or never, to see what each waiter would wait)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 1000.0
        self.advance = advance
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance:
            self.now += seconds


async def send_times(
    budget: LocalRateBudget, time: FakeTime, endpoints: list[str], limits: RateLimits
) -> list[float]:
    """The instant each request of a sequence may go, requests issued one after another."""
    sent: list[float] = []
    for endpoint in endpoints:
        await budget.acquire("stripe:acct_1:live", endpoint, limits=limits)
        sent.append(round(time.now - 1000.0, 6))
    return sent


async def test_an_account_limit_spaces_requests_by_its_interval() -> None:
    time = FakeTime()
    budget = LocalRateBudget(burst_s=0, clock=time.clock, sleep=time.sleep)

    sent = await send_times(budget, time, ["customers"] * 4, RateLimits(per_s=4.0))

    assert sent == [0.0, 0.25, 0.5, 0.75]


async def test_an_endpoint_limit_binds_one_endpoint_and_not_the_others() -> None:
    time = FakeTime()
    budget = LocalRateBudget(burst_s=0, clock=time.clock, sleep=time.sleep)
    limits = RateLimits(per_s=10.0, endpoint_per_s=2.0)

    sent = await send_times(budget, time, ["customers", "customers", "invoices", "customers"], limits)

    # customers at 0 and 0.5 (2/s); invoices right after (account spacing 0.1); customers again at 1.0.
    assert sent == [0.0, 0.5, 0.6, 1.0]


async def test_concurrent_waiters_get_distinct_slots() -> None:
    time = FakeTime(advance=False)
    budget = LocalRateBudget(burst_s=0, clock=time.clock, sleep=time.sleep)
    limits = RateLimits(per_s=5.0)

    await asyncio.gather(*(budget.acquire("acct", "customers", limits=limits) for _ in range(5)))

    assert sorted(round(s, 6) for s in time.sleeps) == [0.2, 0.4, 0.6, 0.8]


async def test_a_penalty_holds_the_account_back() -> None:
    time = FakeTime()
    budget = LocalRateBudget(burst_s=0, clock=time.clock, sleep=time.sleep)
    limits = RateLimits(per_s=100.0, endpoint_per_s=25.0)

    await budget.penalize("acct", 2.0)
    await budget.acquire("acct", "customers", limits=limits)
    held_until = time.now
    await budget.penalize("acct", 1.0, endpoint="invoices")
    await budget.acquire("acct", "customers", limits=limits)
    customers_again = time.now
    await budget.acquire("acct", "invoices", limits=limits)

    assert held_until == pytest.approx(1002.0)
    # The next account slot, 10 ms on: the penalty on the invoices endpoint did not touch customers.
    assert customers_again == pytest.approx(1002.01)
    assert time.now == pytest.approx(1003.0)  # invoices waited out its own penalty


async def test_without_limits_the_default_applies() -> None:
    time = FakeTime()
    budget = LocalRateBudget(RateLimits(per_s=2.0), burst_s=0, clock=time.clock, sleep=time.sleep)

    await budget.acquire("acct", "customers")
    await budget.acquire("acct", "customers")

    assert time.now == pytest.approx(1000.5)


async def test_a_bucket_left_idle_catches_up_by_the_burst_only() -> None:
    time = FakeTime()
    budget = LocalRateBudget(burst_s=0.5, clock=time.clock, sleep=time.sleep)

    sent = await send_times(budget, time, ["customers"] * 5, RateLimits(per_s=4.0))

    # Idle: the bucket may reach back 0.5 s (two slots), so the first three go at once.
    assert sent == [0.0, 0.0, 0.0, 0.25, 0.5]


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimits(per_s=0)
    with pytest.raises(ValueError, match="positive"):
        RateLimits(per_s=1, endpoint_per_s=-1)


def reserve_round_trips() -> float:
    return (
        REGISTRY.get_sample_value("importer_rate_budget_store_operations_total", {"operation": "reserve"})
        or 0.0
    )


# --- MongoDB: shared by replicas ------------------------------------------------------------------


@pytest.fixture
async def budget_db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        yield client[mongodb_database]
    finally:
        await client.close()


async def test_replicas_never_share_a_slot(budget_db: AsyncDatabase[Any]) -> None:
    replica_a, replica_b = MongoRateBudget(budget_db), MongoRateBudget(budget_db)
    interval_s = 0.01
    counts = [3, 1, 5, 2] * 5
    replicas = [replica_a, replica_b] * 10

    reservations = await asyncio.gather(
        *(
            replica.reserve_on_server("stripe:acct_1:live", "tat", interval_s, count)
            for replica, count in zip(replicas, counts, strict=True)
        )
    )

    spans = sorted(
        (first, first + count * interval_s * 1000)
        for (first, _), count in zip(reservations, counts, strict=True)
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 1e-6  # no slot belongs to two reservations
    # None reaches further back than the burst allowance (100 ms).
    assert all(first >= server_now - 100 for first, server_now in reservations)


async def test_an_idle_account_catches_up_by_the_burst_only(budget_db: AsyncDatabase[Any]) -> None:
    budget = MongoRateBudget(budget_db)

    first, server_now = await budget.reserve_on_server("chargebee:acme-test", "tat", 0.4, 1)
    second, _ = await budget.reserve_on_server("chargebee:acme-test", "tat", 0.4, 1)

    assert first == server_now - 100
    assert second == first + 400


async def test_one_trip_takes_both_slots_unless_the_endpoint_is_the_later(
    budget_db: AsyncDatabase[Any],
) -> None:
    # The buckets start a minute ahead of the server's clock, so the slots below follow from the
    # buckets alone, however long this busy machine takes between the calls (from a bucket at the
    # catch-up floor, a call made 11 ms later would start from the floor again, not the bucket).
    budget = MongoRateBudget(budget_db)
    account = "stripe:acct_4:live"
    _, server_now = await budget.reserve_on_server(f"{account}:clock", "tat", 0.01, 1)
    ahead = server_now + 60_000
    await budget_db[RATE_BUDGETS_COLLECTION].replace_one(
        {"_id": account}, {"tat": ahead, "e_customers": ahead}, upsert=True
    )

    both, _, with_account = await budget.reserve_endpoint_and_account(account, "e_customers", 0.04, 0.01)
    endpoint_only, _, second_with_account = await budget.reserve_endpoint_and_account(
        account, "e_customers", 0.04, 0.01
    )
    account_slot, _ = await budget.reserve_on_server(account, "tat", 0.01, 1)
    other_endpoint, _, third_with_account = await budget.reserve_endpoint_and_account(
        account, "e_invoices", 0.04, 0.01
    )

    assert (both, with_account) == (ahead, True)
    # The endpoint's next slot (40 ms on) is later than the account's (10 ms on): endpoint only.
    assert (endpoint_only, second_with_account) == (both + 40, False)
    assert account_slot == both + 10  # the account's time was not skipped
    # Another endpoint, idle: it takes the account's next slot with its own.
    assert (other_endpoint, third_with_account) == (both + 20, True)


async def test_a_penalty_moves_every_replica_past_it(budget_db: AsyncDatabase[Any]) -> None:
    replica_a, replica_b = MongoRateBudget(budget_db), MongoRateBudget(budget_db)

    await replica_a.penalize("stripe:acct_2:live", 5.0)
    first, server_now = await replica_b.reserve_on_server("stripe:acct_2:live", "tat", 0.01, 1)
    await replica_a.penalize("stripe:acct_2:live", 3.0, endpoint="invoices")
    invoices, invoices_now = await replica_b.reserve_on_server("stripe:acct_2:live", "e_invoices", 0.04, 1)
    customers, customers_now = await replica_b.reserve_on_server("stripe:acct_2:live", "e_customers", 0.04, 1)

    assert first - server_now >= 4900  # at least the 5 s penalty, less the time between the two calls
    assert invoices - invoices_now >= 2900
    assert customers == customers_now - 100  # another endpoint is not penalised


async def test_concurrent_acquires_across_replicas_cost_fewer_trips_than_two_stages(
    budget_db: AsyncDatabase[Any],
) -> None:
    budgets = [MongoRateBudget(budget_db), MongoRateBudget(budget_db)]
    limits = RateLimits(per_s=2000.0, endpoint_per_s=1000.0)
    endpoints = ["customers", "invoices", "prices"]
    before = reserve_round_trips()

    await asyncio.gather(
        *(budgets[i % 2].acquire("stripe:acct_3:live", endpoints[i % 3], limits=limits) for i in range(60))
    )

    round_trips = reserve_round_trips() - before
    document = await budget_db["rate_budgets"].find_one({"_id": "stripe:acct_3:live"})
    assert document is not None
    assert {"tat", "e_customers", "e_invoices", "e_prices"} <= set(document)
    # Waiters queued together share a trip: far fewer than the two trips per request of two stages.
    assert 1 <= round_trips < 60


async def test_a_replica_s_next_requests_take_the_slots_its_trips_leased(
    budget_db: AsyncDatabase[Any],
) -> None:
    # High rates, so that no acquire sleeps long: what is counted is trips, not time. A long
    # burst, so that a leased slot is still fresh however slowly this busy machine runs the loop.
    budget = MongoRateBudget(budget_db, lease_slots=3, burst_s=5.0)
    limits = RateLimits(per_s=5000.0, endpoint_per_s=2000.0)
    before = reserve_round_trips()

    for index in range(40):
        await budget.acquire("stripe:acct_5:live", ["customers", "invoices"][index % 2], limits=limits)

    round_trips = reserve_round_trips() - before
    # Without leases, one or two trips a request (40 to 80); each trip leases 3 more of its stage.
    assert round_trips <= 24


async def test_without_leases_every_lone_request_makes_its_own_trip(budget_db: AsyncDatabase[Any]) -> None:
    budget = MongoRateBudget(budget_db, lease_slots=0)
    limits = RateLimits(per_s=5000.0)
    before = reserve_round_trips()

    for _ in range(10):
        await budget.acquire("stripe:acct_6:live", "customers", limits=limits)

    assert reserve_round_trips() - before == 10


async def test_a_penalty_drops_the_slots_leased_before_it(budget_db: AsyncDatabase[Any]) -> None:
    budget = MongoRateBudget(budget_db, lease_slots=3, burst_s=5.0)
    limits = RateLimits(per_s=5000.0)
    for _ in range(2):  # the second, at this pace, leases 3 more
        await budget.acquire("stripe:acct_7:live", "customers", limits=limits)
    before = reserve_round_trips()
    await budget.acquire("stripe:acct_7:live", "customers", limits=limits)
    assert reserve_round_trips() == before  # a leased slot

    await budget.penalize("stripe:acct_7:live", 0.0)
    await budget.acquire("stripe:acct_7:live", "customers", limits=limits)

    assert reserve_round_trips() == before + 1  # the leased ones are gone: a trip again


async def test_a_stage_asked_a_few_times_a_second_leases_nothing(budget_db: AsyncDatabase[Any]) -> None:
    # A leased slot this replica would take only after it expired is denied to the other replicas
    # for nothing: at this pace (one request every 200 ms or slower) every request makes its trip.
    budget = MongoRateBudget(budget_db, lease_slots=3)
    limits = RateLimits(per_s=5000.0)
    before = reserve_round_trips()

    for _ in range(4):
        await budget.acquire("stripe:acct_8:live", "customers", limits=limits)
        await asyncio.sleep(0.2)

    assert reserve_round_trips() - before == 4

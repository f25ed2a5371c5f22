"""Sync's share of an account's rate budget: the whole rate with no import, its share during one."""

from __future__ import annotations

from importer.adapters.rate_budget import LocalRateBudget, RateLimits
from importer.adapters.sync_readers import SyncRateBudget

#: Stripe's live limits: 100/s an account, 25/s an endpoint.
STRIPE = RateLimits(100.0, 25.0)
SHARE = 0.2


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def last_sent_s(importing: bool, endpoints: tuple[str, ...] = ("customers/id",)) -> float:
    """When the last of 10 sync requests (to ``endpoints`` in turn) may go, from a standing start."""
    clock = Clock()

    async def sleep(delay: float) -> None:
        clock.now += delay

    async def import_runs() -> bool:
        return importing

    budget = SyncRateBudget(
        LocalRateBudget(STRIPE, burst_s=0.0, clock=clock, sleep=sleep), import_runs, SHARE
    )
    for index in range(10):
        await budget.acquire("acct_1", endpoints[index % len(endpoints)], limits=STRIPE)
    return clock.now


async def test_sync_takes_the_account_s_whole_rate_when_no_import_runs() -> None:
    # One endpoint: 10 requests at its 25/s, the last one 360 ms after the first.
    assert round(await last_sent_s(importing=False), 3) == 0.36
    # Five endpoints in turn: two requests each, at the account's 100/s.
    endpoints = ("customers/id", "subscriptions/id", "invoices/id", "prices/id", "events")
    assert round(await last_sent_s(importing=False, endpoints=endpoints), 3) == 0.09


async def test_sync_keeps_to_its_share_while_an_import_runs() -> None:
    # Every endpoint together at the share's 20/s: the last one 450 ms after the first.
    assert round(await last_sent_s(importing=True), 3) == 0.45
    assert round(await last_sent_s(importing=True, endpoints=("customers/id", "events")), 3) == 0.45


async def test_the_account_s_own_limit_always_applies() -> None:
    clock = Clock()
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    async def no_import() -> bool:
        return False

    inner = LocalRateBudget(STRIPE, burst_s=0.0, clock=clock, sleep=sleep)
    budget = SyncRateBudget(inner, no_import, SHARE)
    await inner.acquire("acct_1", "customers", limits=STRIPE)  # the import's request
    await budget.acquire("acct_1", "customers/id", limits=STRIPE)

    assert waited == [0.01]

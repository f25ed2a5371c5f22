"""Sync's share of an account's rate budget: the whole rate with no import, its share during one."""

from __future__ import annotations

from importer.adapters.rate_budget import LocalRateBudget, RateLimits
from importer.adapters.sync_readers import SyncRateBudget

SHARED = RateLimits(100.0, 20.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def last_sent_s(importing: bool) -> float:
    """When the last of 10 sync requests may go, from a standing start."""
    clock = Clock()

    async def sleep(delay: float) -> None:
        clock.now += delay

    async def import_runs() -> bool:
        return importing

    budget = SyncRateBudget(LocalRateBudget(SHARED, burst_s=0.0, clock=clock, sleep=sleep), import_runs)
    for _ in range(10):
        await budget.acquire("acct_1", "sync", limits=SHARED)
    return clock.now


async def test_sync_takes_the_account_s_whole_rate_when_no_import_runs() -> None:
    # 10 requests at 100/s: the last one 90 ms after the first.
    assert round(await last_sent_s(importing=False), 3) == 0.09


async def test_sync_keeps_to_its_share_while_an_import_runs() -> None:
    # At the share's 20/s: the last one 450 ms after the first.
    assert round(await last_sent_s(importing=True), 3) == 0.45


async def test_the_account_s_own_limit_always_applies() -> None:
    clock = Clock()
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    async def no_import() -> bool:
        return False

    inner = LocalRateBudget(SHARED, burst_s=0.0, clock=clock, sleep=sleep)
    budget = SyncRateBudget(inner, no_import)
    await inner.acquire("acct_1", "customers", limits=SHARED)  # the import's request
    await budget.acquire("acct_1", "sync", limits=SHARED)

    assert waited == [0.01]

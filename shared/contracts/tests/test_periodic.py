"""Recurring jobs keep running through failed rounds and stop with their block."""

from __future__ import annotations

import asyncio

from contracts.runtime.periodic import PeriodicJob, running


async def test_a_failed_round_does_not_end_the_job() -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def flaky() -> None:
        rounds.append(len(rounds))
        if len(rounds) >= 3:
            third.set()
        if len(rounds) == 1:
            raise ConnectionError("the store is away")

    async with running(PeriodicJob("flaky", flaky, interval_s=0.001)):
        await asyncio.wait_for(third.wait(), timeout=10)
    stopped_at = len(rounds)
    await asyncio.sleep(0.01)

    assert stopped_at >= 3
    assert len(rounds) == stopped_at

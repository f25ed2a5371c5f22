"""Recurring jobs of a process (outbox relays, recovery): each runs every few seconds while it lives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from contracts.runtime.logging import get_logger

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    #: Names the job in its log lines: a failed round logs ``<name>_failed``.
    name: str
    run: Callable[[], Awaitable[object]]
    interval_s: float


async def _forever(job: PeriodicJob) -> None:
    while True:
        await asyncio.sleep(job.interval_s)
        try:
            await job.run()
        except Exception as error:  # the next round tries again; one bad round must not end the job
            _log.warning(f"{job.name}_failed", error_type=type(error).__name__, error=str(error)[:200])


@asynccontextmanager
async def running(*jobs: PeriodicJob) -> AsyncIterator[None]:
    """Run ``jobs``, each every ``interval_s`` (first after one interval), until the block ends."""
    tasks = [asyncio.create_task(_forever(job), name=job.name) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

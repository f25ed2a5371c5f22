"""A page's children fetched while the page is stored and published, when this process will handle them.

The page a cursor leads to (a chain's continuation) is requested on the partition its parent came
from, so the process that planned it normally handles it too. A fresh window (a new time range,
no cursor yet) is requested on the partition its page id hashes to, which spreads an import over
every process; the one that planned it fetches it too when that partition is one its consumer owns
now (``LocalState.page_partitions``), and leaves it to its request otherwise. Fetching these pages
as soon as they are planned takes the processor's latency off the import's path: by the time their
request arrives, their objects usually have.

Nothing here is needed for correctness. The ledger is untouched: a page is still recorded only with
the parent that leads to it, and imported only when its request is handled; a fetch taken from here
is the same read made a little earlier, through the same rate budget. A fetch nobody takes (its
request went to another process after a rebalance, the import ended, the parent failed and planned
other children) is dropped after ``ttl_s``; one that failed is fetched again by the page's own
handling, which deals with the error as it would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter

from importer.domain.source import FetchedPage

PREFETCH_TTL_S: Final = 30.0
MAX_PREFETCHED_PAGES: Final = 64

PREFETCHES: Final = Counter(
    "importer_page_prefetches_total",
    "Pages fetched ahead of their requests (continuations, fresh windows of owned partitions), by "
    "outcome: started, full (not started, too many waiting), taken (its request used it), dropped "
    "(nobody took it in time)",
    ["outcome"],
    registry=REGISTRY,
)


@dataclass(slots=True)
class Prefetches:
    """Fetches started ahead of their page's request, by page id, at most ``max_pages`` at once."""

    ttl_s: float = PREFETCH_TTL_S
    max_pages: int = MAX_PREFETCHED_PAGES
    _fetches: dict[str, tuple[float, asyncio.Task[FetchedPage]]] = field(default_factory=dict)

    def start(self, page_id: str, fetch: Callable[[], Awaitable[FetchedPage]]) -> bool:
        """Start fetching ``page_id`` unless it already is, or too many are waiting to be taken."""
        self._drop_expired()
        if page_id in self._fetches:
            return False
        if len(self._fetches) >= self.max_pages:
            PREFETCHES.labels("full").inc()
            return False
        task = asyncio.ensure_future(fetch())
        task.add_done_callback(_observe)
        self._fetches[page_id] = (time.monotonic() + self.ttl_s, task)
        PREFETCHES.labels("started").inc()
        return True

    def take(self, page_id: str) -> asyncio.Task[FetchedPage] | None:
        """The fetch started for ``page_id``, if any; it is handed out once."""
        entry = self._fetches.pop(page_id, None)
        if entry is None:
            return None
        PREFETCHES.labels("taken").inc()
        return entry[1]

    def __len__(self) -> int:
        return len(self._fetches)

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for page_id in [page_id for page_id, (expires, _) in self._fetches.items() if expires <= now]:
            _, task = self._fetches.pop(page_id)
            task.cancel()
            PREFETCHES.labels("dropped").inc()


def _observe(task: asyncio.Task[FetchedPage]) -> None:
    """Retrieve a failed fetch's error, so one never taken is not reported as unhandled."""
    if not task.cancelled():
        task.exception()

"""A page's children fetched, and their records written, while the page is stored and published, when
this process will handle them.

The page a cursor leads to (a chain's continuation) is requested on the partition its parent came
from, so the process that planned it normally handles it too. A fresh window (a new time range,
no cursor yet) is requested on the partition its page id hashes to, which spreads an import over
every process; the one that planned it fetches it too when that partition is one its consumer owns
now (``LocalState.page_partitions``), and leaves it to its request otherwise. Fetching these pages
as soon as they are planned takes the processor's latency off the import's path: by the time their
request arrives, their objects usually have.

A page fetched ahead has its records stored and published at once too (``PreparedPage``), and when
its children cannot depend on anything but the page itself (its window too small to be cut, or never
cut), its continuation is fetched ahead in turn: a chain then reads and writes at the processor's pace,
and its requests, when they come, find their pages written and only have the ledger step left.

Nothing here is needed for correctness. The ledger is untouched: a page is still recorded only with
the parent that leads to it, and marked done only when its request is handled, after its records
are stored and published; a fetch taken from here is the same read made a little earlier, through
the same rate budget, and records written ahead are the same idempotent writes made earlier. A fetch
nobody takes (its request went to another process after a rebalance, the import ended, the parent
failed and planned other children) is dropped after ``ttl_s`` (its records, written, stay: objects
of the account's history, written again by whichever page imports them); one that failed is fetched
again by the page's own handling, which deals with the error as it would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

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


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """A fetched page, normalised, its records being stored and published."""

    fetched: FetchedPage
    #: Storing and publishing the page's records (and the cancellations derived from them): the
    #: milliseconds each took.
    writing: asyncio.Future[tuple[float, float]]
    #: Keys of the canceled subscriptions whose cancellations are derived at completion.
    deferred: list[str]
    #: Cancellations derived from the page and written with its records.
    cancellations: int


Fetched = TypeVar("Fetched")


@dataclass(slots=True)
class Prefetches(Generic[Fetched]):
    """Fetches started ahead of their page's request, by page id, at most ``max_pages`` at once."""

    ttl_s: float = PREFETCH_TTL_S
    max_pages: int = MAX_PREFETCHED_PAGES
    _fetches: dict[str, tuple[float, asyncio.Task[Fetched]]] = field(default_factory=dict)

    def start(self, page_id: str, fetch: Callable[[], Awaitable[Fetched]]) -> bool:
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

    def take(self, page_id: str) -> asyncio.Task[Fetched] | None:
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


def _observe(task: asyncio.Future[Fetched]) -> None:
    """Retrieve a failed fetch's error, so one never taken is not reported as unhandled."""
    if not task.cancelled():
        task.exception()


def observed(future: asyncio.Future[Fetched]) -> asyncio.Future[Fetched]:
    """``future``, whose error is retrieved when it fails (writes ahead nobody awaits)."""
    future.add_done_callback(_observe)
    return future

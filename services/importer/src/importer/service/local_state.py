"""What one process remembers between pages to spare the store: recent jobs and running counts.

Nothing here is needed for correctness. A cached job is at most ``JOB_TTL_S`` old, so a page of an
import that just ended may still be imported (harmlessly) for that long; counts not yet added to the
imports document when the process dies are missing from the progress shown until completion, whose
counts come from the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from importer.domain.model import ImportJob
from importer.domain.ports import ImportRepository, PagePartitions
from importer.service.prefetch import Prefetches, PreparedPage

JOB_TTL_S: Final = 1.0
NO_ROOM_BACKOFF_S: Final = 0.5
MAX_CACHED_JOBS: Final = 1024


@dataclass(slots=True)
class SplitState:
    """Decisions to cut one resource's windows, taken one at a time in this process.

    ``reserved`` counts the chains this process decided to add but has not yet stored, so that the
    next decision counts them before the store shows them; after a decision found no room, others
    keep off the lock for ``NO_ROOM_BACKOFF_S``.
    """

    backoff_s: float = NO_ROOM_BACKOFF_S
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reserved: int = 0
    no_room_until: float = 0.0

    def recently_full(self) -> bool:
        return time.monotonic() < self.no_room_until

    def found_no_room(self) -> None:
        self.no_room_until = time.monotonic() + self.backoff_s


@dataclass(slots=True)
class LocalState:
    job_ttl_s: float = JOB_TTL_S
    no_room_backoff_s: float = NO_ROOM_BACKOFF_S
    _jobs: OrderedDict[str, tuple[float, ImportJob | None]] = field(default_factory=OrderedDict)
    _progress_at: dict[str, float] = field(default_factory=dict)
    _unreported: dict[str, dict[str, int]] = field(default_factory=dict)
    _splits: dict[tuple[str, str], SplitState] = field(default_factory=dict)
    #: Pages fetched (and written) ahead of their requests.
    prefetches: Prefetches[PreparedPage] = field(default_factory=Prefetches)
    #: The page requests' partitions this process's consumer owns (wired by ``bootstrap``);
    #: ``None``: not known, none counted as owned.
    page_partitions: PagePartitions | None = None

    async def job(self, imports: ImportRepository, import_id: str) -> ImportJob | None:
        now = time.monotonic()
        cached = self._jobs.get(import_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        job = await imports.get(import_id)
        self._jobs[import_id] = (now + self.job_ttl_s, job)
        self._jobs.move_to_end(import_id)
        while len(self._jobs) > MAX_CACHED_JOBS:
            self._jobs.popitem(last=False)
        return job

    def owned_page_partitions(self) -> frozenset[int]:
        """The page requests' partitions this process consumes now (none while unknown)."""
        return frozenset() if self.page_partitions is None else self.page_partitions.assigned_partitions

    def splits(self, import_id: str, resource: str) -> SplitState:
        """This process's view of cutting a resource's windows."""
        key = (import_id, resource)
        state = self._splits.get(key)
        if state is None:
            if len(self._splits) > MAX_CACHED_JOBS:
                self._splits = {k: v for k, v in self._splits.items() if v.lock.locked() or v.reserved}
            state = self._splits[key] = SplitState(self.no_room_backoff_s)
        return state

    def count(self, import_id: str, count_key: str, objects: int) -> None:
        """Objects of finished pages not yet added to the import's running counts."""
        counts = self._unreported.setdefault(import_id, {})
        counts[count_key] = counts.get(count_key, 0) + objects

    def take_counts(self, import_id: str) -> dict[str, int]:
        return self._unreported.pop(import_id, {})

    def progress_due(self, import_id: str, interval_s: float) -> bool:
        """Whether this process may try to report the import's progress now."""
        now = time.monotonic()
        if now - self._progress_at.get(import_id, float("-inf")) < interval_s:
            return False
        self._progress_at[import_id] = now
        if len(self._progress_at) > MAX_CACHED_JOBS:
            self._progress_at.clear()
        return True

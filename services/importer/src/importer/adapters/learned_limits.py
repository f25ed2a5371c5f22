"""Each account's learned request limit, shared by every importer replica through MongoDB.

The rules are the domain's (:mod:`importer.domain.rate_learning`); this module applies them to the
answers a process gets and keeps what they taught in ``learned_rate_limits``, one document per
account (``{_id: "chargebee:<site>", per_min, changed_at, refused_at}``), so every replica paces at
the same estimate and the next import or sync of the site starts from it. A refusal lowers the
stored estimate atomically (``$min``: two replicas lowering at once keep the lower); a probe raises it
only if nobody changed it since it was read. Each process reads the document again at most every
``refresh_s``.

What a process counts itself: the requests the site accepted from it in the past window, and
whether its requests waited for their slot (a busy account, worth probing). Each replica sending to
an account reports its accepted requests of the past window, counted by second, in the account's
document when it reads it (``senders.<replica>: {at, seconds: [[epoch second, count], ...]}``, at
most every ``refresh_s``), so that a refusal lowers the estimate to the count of every replica: its
own, exact, and the others' seconds still in the window as they last reported them (missing only
what they sent since, at most ``refresh_s`` of it); the wait for room in the site's window after it
counts them too. Reports older than ``SENDER_FORGET_S`` are removed.

The store being unreachable never fails a request: the account keeps its last estimate (or the
configured limit), and the error is logged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from contracts.runtime.logging import get_logger
from contracts.runtime.metrics import REGISTRY
from prometheus_client import Counter, Gauge
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from importer.adapters.rate_budget import RateLimits
from importer.domain.rate_learning import (
    LearnedLimit,
    LearningPolicy,
    after_busy_period,
    after_refusal,
    is_busy,
    probe_ceiling,
    resume_delay_s,
    starting_limit,
)

log = get_logger(__name__)

LEARNED_LIMITS_COLLECTION: Final = "learned_rate_limits"
#: How often a process reads an account's estimate again (other replicas may have changed it).
REFRESH_S: Final = 1.0
#: A request that waited this share of its slot interval or more was held back by the budget.
WAITED_SHARE: Final = 0.25
#: Reports this old (a replica that stopped) are removed from the account's document.
SENDER_FORGET_S: Final = 600.0

LEARNED_RATE: Final = Gauge(
    "importer_processor_learned_rate_per_minute",
    "Requests a minute the importer estimates a processor account allows (learned from its answers)",
    ["processor", "account"],
    registry=REGISTRY,
)
LEARNED_RATE_CHANGES: Final = Counter(
    "importer_processor_learned_rate_changes_total",
    "Changes of an account's learned request limit: lowered after a 429, raised by a probe",
    ["processor", "direction"],
    registry=REGISTRY,
)


@dataclass(frozen=True, slots=True)
class SharedView:
    """An account's stored estimate (``None``: nothing learned yet) and the requests the other
    replicas' reports say the site accepted from them in the past window."""

    limit: LearnedLimit | None
    #: The other replicas' accepted requests by epoch second, as they last reported them.
    others_seconds: tuple[tuple[int, int], ...] = ()


class LearnedLimitStore(Protocol):
    """Where accounts' learned limits are kept, shared by every replica."""

    async def report(
        self, account_key: str, sender: str, seconds: list[tuple[int, int]], now: float
    ) -> SharedView:
        """Record ``sender``'s accepted requests of the past window by second; the shared view."""
        ...

    async def lower(self, account_key: str, limit: LearnedLimit) -> LearnedLimit:
        """Keep ``limit`` unless the stored estimate is lower; the stored result."""
        ...

    async def replace(self, account_key: str, expected: LearnedLimit | None, limit: LearnedLimit) -> bool:
        """Store ``limit`` if the stored one is still ``expected`` (``None``: none stored)."""
        ...


def others_seconds(senders: Any, sender: str) -> tuple[tuple[int, int], ...]:
    """The other replicas' reports (``{replica: {at, seconds}}``), their counts by second merged."""
    if not isinstance(senders, dict):
        return ()
    merged: dict[int, int] = {}
    for name, report in senders.items():
        if name == sender or not isinstance(report, dict):
            continue
        for second, count in report.get("seconds") or ():
            merged[int(second)] = merged.get(int(second), 0) + int(count)
    return tuple(sorted(merged.items()))


def in_window(seconds: Sequence[tuple[int, int]], now: float, window_s: float) -> float:
    """How many of the requests counted by second fall in ``(now - window_s, now]`` (a second the
    window's start cuts counts for its share)."""
    start = now - window_s
    return sum(count * min(1.0, max(0.0, second + 1 - start)) for second, count in seconds)


class MongoLearnedLimitStore:
    """:class:`LearnedLimitStore` in the ``learned_rate_limits`` collection."""

    def __init__(self, db: AsyncDatabase[Any], *, collection: str = LEARNED_LIMITS_COLLECTION) -> None:
        self._collection = db[collection]

    async def report(
        self, account_key: str, sender: str, seconds: list[tuple[int, int]], now: float
    ) -> SharedView:
        document = await self._collection.find_one_and_update(
            {"_id": account_key},
            {"$set": {f"senders.{sender}": {"at": now, "seconds": [list(pair) for pair in seconds]}}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return SharedView(None)
        senders = document.get("senders")
        if isinstance(senders, dict):
            gone = [
                name for name, seen in senders.items() if float(seen.get("at") or 0.0) < now - SENDER_FORGET_S
            ]
            if gone:
                await self._collection.update_one(
                    {"_id": account_key}, {"$unset": {f"senders.{name}": "" for name in gone}}
                )
        limit = _limit_of(document) if "per_min" in document else None
        return SharedView(limit, others_seconds(senders, sender))

    async def lower(self, account_key: str, limit: LearnedLimit) -> LearnedLimit:
        update: dict[str, Any] = {
            "$min": {"per_min": limit.per_min},
            "$max": {"changed_at": limit.changed_at},
            "$set": {"updated_at": datetime.now(UTC)},
        }
        if limit.refused_at is not None:
            update["$max"]["refused_at"] = limit.refused_at
        document = await self._collection.find_one_and_update(
            {"_id": account_key}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        return _limit_of(document) if document is not None else limit

    async def replace(self, account_key: str, expected: LearnedLimit | None, limit: LearnedLimit) -> bool:
        document = {
            "per_min": limit.per_min,
            "changed_at": limit.changed_at,
            "refused_at": limit.refused_at,
            "updated_at": datetime.now(UTC),
        }
        if expected is None:  # the document may hold the replicas' reports only
            try:
                result = await self._collection.update_one(
                    {"_id": account_key, "per_min": {"$exists": False}}, {"$set": document}, upsert=True
                )
            except DuplicateKeyError:
                return False
            return result.modified_count == 1 or result.upserted_id is not None
        result = await self._collection.update_one(
            {"_id": account_key, "per_min": expected.per_min, "refused_at": expected.refused_at},
            {"$set": document},
        )
        return result.modified_count == 1


def _limit_of(document: dict[str, Any]) -> LearnedLimit:
    refused_at = document.get("refused_at")
    return LearnedLimit(
        per_min=float(document["per_min"]),
        changed_at=float(document.get("changed_at") or 0.0),
        refused_at=None if refused_at is None else float(refused_at),
    )


@dataclass(slots=True)
class _Period:
    started: float
    requests: int = 0
    waited: int = 0


class AccountPace:
    """One account's learned pace in this process: the limits to pace at, and what answers teach.

    Shared by every source and sync reader of the account in the process (``RateLearner.account``).
    """

    def __init__(
        self,
        learner: RateLearner,
        processor: str,
        account_key: str,
        configured_per_min: float,
        *,
        beyond_configured: bool,
    ) -> None:
        self._learner = learner
        self.processor = processor
        self.account_key = account_key
        self.configured_per_min = configured_per_min
        self.ceiling_per_min = probe_ceiling(configured_per_min, beyond_configured=beyond_configured)
        self._stored: LearnedLimit | None = None
        self._limit: LearnedLimit | None = None
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()
        self._refusing = asyncio.Lock()
        self._accepted: deque[float] = deque()
        self._others: tuple[tuple[int, int], ...] = ()
        self._period: _Period | None = None

    @property
    def per_min(self) -> float:
        """The current estimate (the configured limit until the stored one is read)."""
        return self._limit.per_min if self._limit is not None else self.configured_per_min

    async def limits(self) -> RateLimits:
        """The limits to pace the next request at (the stored estimate, read again when stale)."""
        if self._learner.now() - self._read_at >= self._learner.refresh_s:
            async with self._reading:
                if self._learner.now() - self._read_at >= self._learner.refresh_s:
                    await self._read()
        return RateLimits(self.per_min / 60.0 * self._learner.headroom)

    async def _read(self) -> None:
        """Report this process's count and read the shared estimate and the others' counts."""
        now = self._learner.now()
        self._forget_before(now)
        try:
            view = await self._learner.store.report(
                self.account_key, self._learner.sender, self._seconds(), now
            )
        except Exception as error:  # learning is best effort: keep pacing at what is known
            log.warning("learned_limit_unreadable", account=self.account_key, error=type(error).__name__)
            view = SharedView(self._stored, self._others)
        self._read_at = now
        self._stored = view.limit
        self._others = view.others_seconds
        self._set(view.limit or self._limit or starting_limit(self.configured_per_min, now))

    def _set(self, limit: LearnedLimit) -> None:
        self._limit = limit
        LEARNED_RATE.labels(self.processor, self.account_key).set(limit.per_min)

    def waited(self, wait_s: float, limits: RateLimits) -> None:
        """A request got its slot after ``wait_s``: held back by the budget, or not."""
        now = self._learner.now()
        period = self._period
        if period is None:
            period = self._period = _Period(started=now)
        period.requests += 1
        if wait_s >= WAITED_SHARE / limits.per_s:
            period.waited += 1

    async def accepted(self) -> None:
        """The site answered (anything but a 429): the request counts in its window."""
        now = self._learner.now()
        self._accepted.append(now)
        self._forget_before(now)
        period = self._period
        policy = self._learner.policy
        if period is None or now - period.started < policy.probe_every_s:
            return
        self._period = _Period(started=now)
        if not is_busy(period.requests, period.waited, policy) or self._limit is None:
            return
        raised = after_busy_period(self._limit, now=now, ceiling_per_min=self.ceiling_per_min, policy=policy)
        if raised is None:
            return
        try:
            kept = await self._learner.store.replace(self.account_key, self._stored, raised)
        except Exception as error:
            log.warning("learned_limit_unsaved", account=self.account_key, error=type(error).__name__)
            kept = False
        if not kept:  # another replica changed it: read what it learned
            self._read_at = float("-inf")
            return
        self._stored = raised
        self._set(raised)
        LEARNED_RATE_CHANGES.labels(self.processor, "raised").inc()
        log.info("learned_limit_raised", account=self.account_key, per_min=round(raised.per_min, 1))

    async def refused(self) -> float:
        """The site answered 429: lower the estimate if it teaches something; the seconds to wait
        before sending again so that the site's window has room at the (new) pace."""
        async with self._refusing:  # one at a time: those answering the same burst then settle
            return await self._refused()

    async def _refused(self) -> float:
        await self._read()  # the others' latest counts, and what they learned meanwhile
        now = self._learner.now()
        self._period = None
        current = self._limit or starting_limit(self.configured_per_min, now)
        policy = self._learner.policy
        by_others = round(in_window(self._others, now, policy.window_s))
        accepted = len(self._accepted) + by_others
        lowered = after_refusal(current, now=now, accepted_in_window=accepted, policy=policy)
        if lowered is not None:
            try:
                stored = await self._learner.store.lower(self.account_key, lowered)
            except Exception as error:
                log.warning("learned_limit_unsaved", account=self.account_key, error=type(error).__name__)
                stored = lowered
            self._stored = stored
            self._read_at = now
            if stored.per_min < current.per_min:
                LEARNED_RATE_CHANGES.labels(self.processor, "lowered").inc()
                log.info(
                    "learned_limit_lowered",
                    account=self.account_key,
                    per_min=round(stored.per_min, 1),
                    accepted_in_window=accepted,
                    by_others=by_others,
                )
            self._set(stored)
        return resume_delay_s(
            self._every_replicas_instants(),
            now=now,
            limit=self.per_min,
            pace_per_min=self.per_min * self._learner.headroom,
            window_s=policy.window_s,
        )

    def _every_replicas_instants(self) -> list[float]:
        """The instants of the requests the site accepted from every replica in the past window:
        this process's own, and the others' spread evenly over the seconds they reported."""
        others = [second + (index + 0.5) / count for second, count in self._others for index in range(count)]
        return sorted([*self._accepted, *others])

    def _seconds(self) -> list[tuple[int, int]]:
        """This process's accepted requests of the past window, counted by epoch second."""
        counts: dict[int, int] = {}
        for instant in self._accepted:
            counts[int(instant)] = counts.get(int(instant), 0) + 1
        return sorted(counts.items())

    def _forget_before(self, now: float) -> None:
        horizon = now - self._learner.policy.window_s
        while self._accepted and self._accepted[0] <= horizon:
            self._accepted.popleft()


@dataclass
class RateLearner:
    """The learned paces of one process, one :class:`AccountPace` per account."""

    store: LearnedLimitStore
    headroom: float = 0.99
    policy: LearningPolicy = field(default_factory=LearningPolicy)
    refresh_s: float = REFRESH_S
    clock: Callable[[], float] = time.time
    #: This replica's name in the accounts' documents.
    sender: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _accounts: dict[str, AccountPace] = field(default_factory=dict)

    def now(self) -> float:
        return self.clock()

    def account(
        self, processor: str, account_key: str, configured_per_min: float, *, beyond_configured: bool
    ) -> AccountPace:
        """The account's pace (the same object for every source of the account in this process)."""
        pace = self._accounts.get(account_key)
        if pace is None or pace.configured_per_min != configured_per_min:
            pace = AccountPace(
                self, processor, account_key, configured_per_min, beyond_configured=beyond_configured
            )
            self._accounts[account_key] = pace
        return pace

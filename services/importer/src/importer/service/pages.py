"""Importing one page: fetch, normalise, store, publish, then mark it done with its follow-up pages.

The order is what makes a crash at any moment harmless. Records are stored (stamped with the
import) and published before the page is marked done; marking it done and inserting the pages it
leads to is one atomic step; those pages are published after it, and the page request is committed
last. A redelivered request for a page already done publishes its children again if that step may
not have happened, and counts nothing twice: counts come from the ledger, where a page is done once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from contracts.errors import PermanentFailure
from contracts.events import Mode, Processor
from contracts.records import CancellationRecord, CanonicalRecord, SubscriptionRecord
from contracts.runtime.logging import get_logger

from importer.domain.cancellations import derive_cancellations
from importer.domain.lifecycle import is_canceled
from importer.domain.model import FailureCode, ImportJob, LedgerPage, PageStatus
from importer.domain.mrr import needs_coupons
from importer.domain.normalize import MalformedObject, normalizer_for
from importer.domain.planning import (
    SMALLEST_PIECE_PAGES,
    PlannedPage,
    ServeOrder,
    SlicingPolicy,
    chain_share,
    least_piece,
    next_pages,
    worth_cutting,
)
from importer.domain.ports import SourceUnavailable
from importer.domain.resources import windowable
from importer.domain.source import FetchedPage, NormalizationContext, SourceError
from importer.service.complete_import import complete_if_done
from importer.service.dependencies import Dependencies
from importer.service.outcomes import fail_import
from importer.service.progress import count_page

_log = get_logger(__name__)

SERVE_ORDER = {Processor.STRIPE: ServeOrder.NEWEST_FIRST, Processor.CHARGEBEE: ServeOrder.OLDEST_FIRST}


class PageOutcome(StrEnum):
    IMPORTED = "imported"
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"  # the import ended (or is unknown): nothing to do
    FAILED_IMPORT = "failed_import"


class RejectedPage(PermanentFailure):
    """A page no retry can import; ``code`` becomes the import's failure code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class PageReport:
    outcome: PageOutcome
    objects: int = 0
    children: int = 0
    #: Milliseconds spent in each step, for the page's log line.
    timings_ms: dict[str, float] = field(default_factory=dict)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class _Timer:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = _ms(now - self._last)
        self._last = now


async def _timed(step: Awaitable[None]) -> float:
    """Milliseconds ``step`` took (steps running side by side each get their own)."""
    started = time.perf_counter()
    await step
    return _ms(time.perf_counter() - started)


def slicing_for(deps: Dependencies, job: ImportJob) -> SlicingPolicy:
    if job.processor is Processor.CHARGEBEE:
        return deps.tuning.chargebee_slicing
    return deps.tuning.stripe_live_slicing if job.mode is Mode.LIVE else deps.tuning.stripe_test_slicing


async def import_page(deps: Dependencies, import_id: str, page_id: str) -> PageReport:
    """Import the page ``page_id`` of ``import_id``; raises what a retry may mend."""
    job = await deps.local.job(deps.imports, import_id)
    if job is None or job.status.terminal:
        return PageReport(PageOutcome.SKIPPED)
    entry = await deps.ledger.get(page_id)
    if entry is None:
        _log.warning("page.unknown", import_id=import_id, page_id=page_id)
        return PageReport(PageOutcome.SKIPPED)
    if entry.status is PageStatus.DONE:
        await resume_done_page(deps, job, entry)
        return PageReport(PageOutcome.ALREADY_DONE)

    timer = _Timer()
    fetched = await _fetch(deps, job, entry.page)
    timer.lap("fetch")
    if fetched is None:
        return PageReport(PageOutcome.FAILED_IMPORT)
    records = _normalize(job, entry.page, fetched)
    cancellations, deferred = _cancellations(records)
    timer.lap("normalize")
    # Storing and publishing do not depend on each other.
    stored, published = await asyncio.gather(
        _timed(deps.records.write(import_id, [*records, *cancellations], deps.clock())),
        _timed(deps.record_publisher.publish_records([*records, *cancellations])),
    )
    timer.lap("store_publish")
    timer.laps.update(store=stored, publish=published)

    async def complete(children: list[LedgerPage]) -> bool:
        return await deps.ledger.complete(
            page_id,
            len(fetched.objects),
            children,
            deps.clock(),
            deferred_cancellations=deferred,
            cancellations=len(cancellations),
        )

    children, completed = await _complete(deps, job, entry, fetched, complete)
    if not completed:
        # Another delivery of this request finished it first; make sure its children went out.
        done = await deps.ledger.get(page_id)
        if done is not None:
            await resume_done_page(deps, job, done)
        return PageReport(PageOutcome.ALREADY_DONE)
    timer.lap("ledger")
    if children:
        await deps.page_publisher.publish_pages(job.account_id, [child.page for child in children])
    timer.lap("children")
    await count_page(deps, job, entry.count_key, len(fetched.objects))
    if not children:
        await complete_if_done(deps, import_id)
    timer.lap("progress")
    return PageReport(PageOutcome.IMPORTED, len(fetched.objects), len(children), timer.laps)


async def resume_done_page(deps: Dependencies, job: ImportJob, entry: LedgerPage) -> None:
    """Redo what may not have happened after the page was marked done: publishing its children
    (those still pending a while after they were stamped published) and the completion check.

    Children just published are left alone, so a redelivery does not send them twice, and the
    duplicates of a page's children never cascade down its chain.
    """
    now = deps.clock()
    stale = await deps.ledger.claim_unpublished_children(
        job.import_id,
        entry.page.page_id,
        now - timedelta(seconds=deps.tuning.republish_children_after_s),
        now,
    )
    if stale:
        await deps.page_publisher.publish_pages(job.account_id, stale)
    await complete_if_done(deps, job.import_id)


def _cancellations(records: list[CanonicalRecord]) -> tuple[list[CancellationRecord], list[str]]:
    """The past cancellations among a page's subscriptions, derived now where their MRR needs no
    coupon, and the keys of the others, derived at completion once every coupon is stored."""
    derived: list[CancellationRecord] = []
    deferred: list[str] = []
    for record in records:
        if not isinstance(record, SubscriptionRecord) or not is_canceled(record):
            continue
        if needs_coupons(record):
            deferred.append(record.key())
        else:
            derived.extend(derive_cancellations([record], {}))
    return derived, deferred


async def _fetch(deps: Dependencies, job: ImportJob, page: PlannedPage) -> FetchedPage | None:
    try:
        source = await deps.sources.source_for(job)
        return await source.fetch_page(page.query)
    except SourceUnavailable as error:
        await fail_import(deps, job.import_id, FailureCode.CONNECTION_UNAVAILABLE, str(error))
    except SourceError as error:
        if error.retryable:
            raise
        await fail_import(deps, job.import_id, error.code.value, error.message)
    return None


def _normalize(job: ImportJob, page: PlannedPage, fetched: FetchedPage) -> list[CanonicalRecord]:
    normalizer = normalizer_for(job.processor)
    context = NormalizationContext(account_id=job.account_id)
    try:
        return [
            record for raw in fetched.objects for record in normalizer.normalize(page.resource, raw, context)
        ]
    except MalformedObject as error:
        raise RejectedPage(FailureCode.MALFORMED_OBJECT, str(error)) from error


async def _complete(
    deps: Dependencies,
    job: ImportJob,
    entry: LedgerPage,
    fetched: FetchedPage,
    complete: Callable[[list[LedgerPage]], Awaitable[bool]],
) -> tuple[list[LedgerPage], bool]:
    """Plan the page's children and complete it with them: its atomic step in the ledger."""
    # Cut into the smallest pieces any cut may make: whether this page could be cut at all.
    children = _next(
        deps, job, entry, fetched, running_chains=0, chain_limit=None, min_pages=SMALLEST_PIECE_PAGES
    )
    splits = deps.local.splits(job.import_id, entry.page.resource)
    if len(children) > 1 and not splits.recently_full():
        # Whether to cut, and how far, depends on the resource's other chains: decided
        # one page at a time in this process, each counting the chains the ones before it added
        # (stored or not yet), so pages finishing together do not all fan out at once.
        async with splits.lock:
            left_after = sum(child.page.estimated_pages or 0.0 for child in children)
            cut = await _cut(deps, job, entry, fetched, reserved=splits.reserved, left_after=left_after)
            children = (
                cut if cut is not None else _next(deps, job, entry, fetched, running_chains=0, chain_limit=1)
            )
            added = len(children) - 1
            splits.reserved += added
            if cut is not None and not added:
                splits.found_no_room()
        try:
            return children, await complete(children)
        finally:
            splits.reserved -= added
    if len(children) > 1:
        children = _next(deps, job, entry, fetched, running_chains=0, chain_limit=1)
    return children, await complete(children)


def _next(
    deps: Dependencies,
    job: ImportJob,
    entry: LedgerPage,
    fetched: FetchedPage,
    *,
    running_chains: int,
    chain_limit: int | None,
    min_pages: float | None = None,
) -> list[LedgerPage]:
    resource = entry.page.resource
    pages = next_pages(
        entry.page,
        fetched,
        order=SERVE_ORDER[job.processor],
        policy=slicing_for(deps, job),
        splittable=windowable(job.processor, resource),
        running_chains=running_chains,
        chain_limit=chain_limit,
        min_pages=min_pages,
    )
    return [LedgerPage(page, PageStatus.PENDING, entry.count_key) for page in pages]


async def _cut(
    deps: Dependencies,
    job: ImportJob,
    entry: LedgerPage,
    fetched: FetchedPage,
    *,
    reserved: int,
    left_after: float,
) -> list[LedgerPage] | None:
    """The page's children given how much its resource has left beside the others, and how many
    other chains of it still run: pending ones (this page is one of them) and ``reserved``.

    ``left_after`` is what the page's window is estimated to hold after it: it stands for the page's
    own estimate, which was made before the page was served (and is unknown for a first page).
    ``None`` when the window is not one to cut (smaller than the median chain of its resource)."""
    resource = entry.page.resource
    pending = await deps.ledger.pending_estimates(job.import_id)
    remaining: dict[str, float | None] = {resource: left_after}
    chains = list(pending)
    if (resource, entry.page.estimated_pages) in chains:
        chains.remove((resource, entry.page.estimated_pages))  # this page: ``left_after`` stands for it
    for name, estimate in chains:
        if estimate is not None:
            remaining[name] = (remaining.get(name) or 0.0) + estimate
        else:
            remaining.setdefault(name, None)  # unknown until one of its pages is served
    running = max(0, sum(1 for other, _ in pending if other == resource) - 1) + reserved
    others = [estimate or 0.0 for name, estimate in chains if name == resource]
    if not worth_cutting(left_after, others):
        return None
    policy = slicing_for(deps, job)
    limit = chain_share(resource, remaining, policy)
    return _next(
        deps,
        job,
        entry,
        fetched,
        running_chains=running,
        chain_limit=limit,
        min_pages=least_piece(others, policy),
    )

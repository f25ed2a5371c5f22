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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from contracts.errors import PermanentFailure
from contracts.records import CancellationRecord, CanonicalRecord, SubscriptionRecord
from contracts.runtime.logging import get_logger

from importer.domain.cancellations import derive_cancellations
from importer.domain.lifecycle import is_canceled
from importer.domain.model import FailureCode, ImportJob, LedgerPage, PageStatus, failure_code_of
from importer.domain.mrr import needs_coupons
from importer.domain.normalize import MalformedObject, normalizer_for
from importer.domain.planning import (
    PlannedPage,
)
from importer.domain.ports import SourceUnavailable
from importer.domain.source import FetchedPage, NormalizationContext, SourceError, SourceErrorCode
from importer.service.complete_import import complete_if_done
from importer.service.dependencies import Dependencies
from importer.service.fan_out import certain_continuation, complete_with_children
from importer.service.outcomes import fail_import
from importer.service.prefetch import PreparedPage, observed
from importer.service.progress import count_page

_log = get_logger(__name__)


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


async def import_page(
    deps: Dependencies, import_id: str, page_id: str, *, partition: int | None = None
) -> PageReport:
    """Import the page ``page_id`` of ``import_id``; raises what a retry may mend.

    ``partition``: where the page's request came from; the page's continuation is requested there
    and fetched at once (see ``prefetch``), so the chain does not wait for this page's writes to
    ask the processor for its next page. ``None``: no continuation is fetched ahead. Fresh windows
    whose requests go to a partition this process consumes are fetched at once too."""
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
    prepared = await _prepared(deps, job, entry.page)
    timer.lap("fetch")  # and normalise; for a page fetched ahead, what was left of that
    if prepared is None:
        return PageReport(PageOutcome.FAILED_IMPORT)
    fetched, writing = prepared.fetched, prepared.writing

    async def complete(children: list[LedgerPage]) -> bool:
        await _fetch_ahead(deps, job, [child.page for child in children], partition)
        timer.lap("plan")
        stored, published = await writing
        timer.lap("store_publish")
        timer.laps.update(store=stored, publish=published)
        return await deps.ledger.complete(
            page_id,
            len(fetched.objects),
            children,
            deps.clock(),
            deferred_cancellations=prepared.deferred,
            cancellations=prepared.cancellations,
        )

    try:
        children, completed = await complete_with_children(deps, job, entry, fetched, complete)
    finally:
        _settle(writing)
    if not completed:
        # Another delivery of this request finished it first; make sure its children went out.
        done = await deps.ledger.get(page_id)
        if done is not None:
            await resume_done_page(deps, job, done)
        return PageReport(PageOutcome.ALREADY_DONE)
    timer.lap("ledger")
    if children:
        await _request_children(deps, job, [child.page for child in children], partition)
    timer.lap("children")
    await count_page(deps, job, entry.count_key, len(fetched.objects))
    if not children:
        await complete_if_done(deps, import_id)
    timer.lap("progress")
    return PageReport(PageOutcome.IMPORTED, len(fetched.objects), len(children), timer.laps)


def _continuation(pages: list[PlannedPage]) -> PlannedPage | None:
    """The page a cursor leads to, among a page's children (the others are fresh windows)."""
    return next((page for page in pages if page.query.cursor is not None), None)


async def _fetch_ahead(
    deps: Dependencies, job: ImportJob, pages: list[PlannedPage], partition: int | None
) -> None:
    """Start fetching the children whose requests this process will most likely handle (see
    ``prefetch``): the continuation, sent to its parent's ``partition``, and those spread by page id
    (fresh windows) whose partition this process consumes."""
    continuation = _continuation(pages) if partition is not None else None
    if continuation is not None:
        _start_fetch(deps, job, continuation)
    owned = deps.local.owned_page_partitions()
    if not owned:
        return
    for page in pages:
        if page is not continuation and await deps.page_publisher.request_partition(page) in owned:
            _start_fetch(deps, job, page)


def _start_fetch(deps: Dependencies, job: ImportJob, page: PlannedPage) -> None:
    """Fetch ``page`` ahead of its request and write its records; then, if where it leads cannot
    change (``certain_continuation``), its continuation, which goes to the same partition."""

    async def ahead() -> PreparedPage:
        source = await deps.sources.source_for(job)
        fetched = await source.fetch_page(page.query)
        if not await _importing(deps, job):
            raise _ImportEnded(job.import_id)  # nothing written for an import that ended meanwhile
        prepared = _prepare(deps, job, page, fetched)
        continuation = certain_continuation(deps, job, page, fetched)
        if continuation is not None:
            _start_fetch(deps, job, continuation)
        return prepared

    deps.local.prefetches.start(page.page_id, ahead)


class _ImportEnded(Exception):
    """A page fetched ahead for an import that has ended since: neither written nor followed."""


async def _importing(deps: Dependencies, job: ImportJob) -> bool:
    """Whether the import is still running, as this process knows it (``LocalState.job``, ≤ 1 s old)."""
    current = await deps.local.job(deps.imports, job.import_id)
    return current is not None and not current.status.terminal


def _prepare(deps: Dependencies, job: ImportJob, page: PlannedPage, fetched: FetchedPage) -> PreparedPage:
    """Normalise the page and start storing and publishing its records (and the cancellations
    derived from them): neither depends on the other, nor on planning the page's children."""
    records = _normalize(job, page, fetched)
    cancellations, deferred = _cancellations(records)
    written = [*records, *cancellations]
    writing = observed(
        asyncio.ensure_future(
            asyncio.gather(
                _timed(deps.records.write(job.import_id, written, deps.clock(), began_at=job.created_at)),
                _timed(deps.record_publisher.publish_records(written)),
            )
        )
    )
    return PreparedPage(fetched, writing, deferred, len(cancellations))


async def _request_children(
    deps: Dependencies, job: ImportJob, pages: list[PlannedPage], partition: int | None
) -> None:
    """The continuation on its parent's partition (where it is being fetched already), fresh
    windows spread over every partition."""
    continuation = _continuation(pages) if partition is not None else None
    if continuation is None:
        await deps.page_publisher.publish_pages(job.account_id, pages)
        return
    fresh = [page for page in pages if page is not continuation]
    await asyncio.gather(
        deps.page_publisher.publish_pages(job.account_id, [continuation], partition=partition),
        *([deps.page_publisher.publish_pages(job.account_id, fresh)] if fresh else []),
    )


def _settle(writing: asyncio.Future[tuple[float, float]]) -> None:
    """A page given up before its writes were awaited (planning failed): stop them, and retrieve
    their error so it is not reported as unhandled; the page is tried again whole."""
    if not writing.done():
        writing.cancel()
    elif not writing.cancelled():
        writing.exception()


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


async def _prepared(deps: Dependencies, job: ImportJob, page: PlannedPage) -> PreparedPage | None:
    """The page fetched ahead (and being written), or fetched and written now; ``None`` when the
    import failed for it."""
    ahead = deps.local.prefetches.take(page.page_id)
    if ahead is not None:
        try:
            return await ahead
        except Exception:  # fetched again below, where its error is handled as always
            _log.debug("page.prefetch_failed", page_id=page.page_id)
    fetched = await _fetch(deps, job, page)
    return None if fetched is None else _prepare(deps, job, page, fetched)


async def _fetch(deps: Dependencies, job: ImportJob, page: PlannedPage) -> FetchedPage | None:
    try:
        source = await deps.sources.source_for(job)
        return await source.fetch_page(page.query)
    except SourceUnavailable as error:
        await fail_import(deps, job.import_id, FailureCode.CONNECTION_UNAVAILABLE, str(error))
    except SourceError as error:
        if error.retryable:
            raise
        if error.code is SourceErrorCode.KEY_REJECTED and await deps.sources.replaced_since(
            job, error.credentials_version
        ):
            # A source built before a reconnect: the page is tried again with the new credentials.
            raise SourceError(
                error.code,
                f"{error.message} (credentials replaced since: tried again with the stored ones)",
                retryable=True,
                status=error.status,
            ) from error
        await fail_import(
            deps,
            job.import_id,
            failure_code_of(error.code),
            error.message,
            credentials_version=error.credentials_version,
        )
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

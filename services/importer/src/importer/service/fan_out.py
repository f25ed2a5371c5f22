"""How far a page fans out: its children, planned beside its resource's other chains.

The page pipeline (``pages``) calls in here once per page, with the page's atomic step in the ledger
as ``complete``; this module never calls back into the pipeline. Whether to cut a page's window and
into how many chains is decided one page at a time per resource in this process (``LocalState``'s
splits), so pages finishing together do not all fan out at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.events import Mode, Processor

from importer.domain.model import ImportJob, LedgerPage, PageStatus
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
from importer.domain.resources import windowable
from importer.domain.source import FetchedPage
from importer.service.dependencies import Dependencies

SERVE_ORDER = {Processor.STRIPE: ServeOrder.NEWEST_FIRST, Processor.CHARGEBEE: ServeOrder.OLDEST_FIRST}


def slicing_for(deps: Dependencies, job: ImportJob) -> SlicingPolicy:
    if job.processor is Processor.CHARGEBEE:
        return deps.tuning.chargebee_slicing
    return deps.tuning.stripe_live_slicing if job.mode is Mode.LIVE else deps.tuning.stripe_test_slicing


async def complete_with_children(
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


def certain_continuation(
    deps: Dependencies, job: ImportJob, page: PlannedPage, fetched: FetchedPage
) -> PlannedPage | None:
    """The page ``page`` leads to once ``fetched``, when nothing else can change it: its window is
    never cut (too small for the smallest piece, or a resource the processor cannot filter by
    time), so ``complete_with_children`` will plan exactly this continuation whatever the other
    chains do. ``None`` when the window is exhausted or may still be cut."""
    children = _planned(
        deps, job, page, fetched, running_chains=0, chain_limit=None, min_pages=SMALLEST_PIECE_PAGES
    )
    return children[0] if len(children) == 1 else None


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
    pages = _planned(
        deps,
        job,
        entry.page,
        fetched,
        running_chains=running_chains,
        chain_limit=chain_limit,
        min_pages=min_pages,
    )
    return [LedgerPage(page, PageStatus.PENDING, entry.count_key) for page in pages]


def _planned(
    deps: Dependencies,
    job: ImportJob,
    page: PlannedPage,
    fetched: FetchedPage,
    *,
    running_chains: int,
    chain_limit: int | None,
    min_pages: float | None,
) -> list[PlannedPage]:
    return next_pages(
        page,
        fetched,
        order=SERVE_ORDER[job.processor],
        policy=slicing_for(deps, job),
        splittable=windowable(job.processor, page.resource),
        running_chains=running_chains,
        chain_limit=chain_limit,
        min_pages=min_pages,
    )


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

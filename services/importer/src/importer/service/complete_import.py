"""Completing an import: detected exactly, decided once, and finished even if its finisher crashes.

When a page leaves no pending page behind, one conditional update (``running`` → ``finalizing``
with a lease) picks the single process that finalizes. It derives the past cancellations from the
stored subscriptions, takes the counts from the ledger (each page counts once, however often its
message was delivered), marks the import completed and publishes ``ImportCompleted``. If it dies on
the way, the lease runs out and recovery finalizes again: every step is idempotent.
"""

from __future__ import annotations

from contracts.runtime.logging import get_logger

from importer.domain.cancellations import derive_cancellations
from importer.domain.model import ImportJob
from importer.service.dependencies import Dependencies
from importer.service.metrics import count_ended
from importer.service.outcomes import publish_outcome

_log = get_logger(__name__)


async def complete_if_done(deps: Dependencies, import_id: str) -> ImportJob | None:
    """Finalize the import when no page of it is pending; the completed job when this call did."""
    if await deps.ledger.pending_count(import_id) > 0:
        return None
    job = await deps.imports.claim_finalization(import_id, deps.clock(), deps.tuning.finalize_lease_s)
    if job is None:
        return None
    return await finalize(deps, job)


async def finalize(deps: Dependencies, job: ImportJob) -> ImportJob | None:
    """Derive cancellations, count, complete and announce a job this process has claimed."""
    past_cancellations = await _derive_cancellations(deps, job)
    resources = await deps.ledger.objects_by_count_key(job.import_id)
    completed = await deps.imports.complete(job.import_id, resources, past_cancellations, deps.clock())
    if completed is None:
        # Failed or cancelled while finalizing: that path published its own outcome.
        return None
    count_ended(completed)
    await publish_outcome(deps, completed)
    if deps.churn_summaries is not None:
        # The background rebuild takes the account's churn summary from here; a crash before this
        # leaves it to the first query (an import that ended after a summary's reading makes it
        # not current).
        await deps.churn_summaries.inputs_changed(job.account_id, job.processor.value, deps.clock())
    _log.info(
        "import.completed",
        import_id=job.import_id,
        account_id=job.account_id,
        processor=job.processor.value,
        resources=dict(resources),
        past_cancellations=past_cancellations,
        duration_s=None if completed.duration_s is None else round(completed.duration_s, 3),
    )
    return completed


async def _derive_cancellations(deps: Dependencies, job: ImportJob) -> int:
    """The import's past cancellations: those its pages derived, and those that needed the coupons,
    derived, stored and published now, a batch at a time.

    The ledger remembers which cancelled subscriptions each page left for now, so this reads those
    by key rather than scanning the subscriptions of every account.
    """
    processor = job.processor.value
    total = await deps.ledger.page_cancellations(job.import_id)
    coupons = None
    async for keys in deps.ledger.deferred_cancellations(job.import_id, deps.tuning.cancellation_batch_size):
        if coupons is None:
            coupons = await deps.records.coupons(job.account_id, processor)
        subscriptions = await deps.records.subscriptions_by_key(keys)
        cancellations = derive_cancellations(subscriptions, coupons)
        if not cancellations:
            continue
        await deps.records.write(job.import_id, cancellations, deps.clock(), began_at=job.created_at)
        await deps.record_publisher.publish_records(cancellations)
        total += len(cancellations)
    await deps.records.remove_cancellations_not_in(
        job.account_id, processor, job.import_id, began_at=job.created_at
    )
    return total

"""Starting an import: create the job once, plan its first pages, send them on their way.

Idempotent on ``import_id``: a redelivered trigger finds the job and only redoes the steps a crash
may have cut short (planning, the ``ImportStarted`` event, publishing the first pages), each of
which records that it happened.
"""

from __future__ import annotations

from contracts.runtime.logging import get_logger

from importer.domain.model import (
    FailureCode,
    ImportJob,
    ImportStatus,
    LedgerPage,
    PageStatus,
    StartImport,
    started_event,
)
from importer.domain.planning import plan_import
from importer.domain.ports import SourceUnavailable
from importer.domain.resources import count_key, growing
from importer.service.complete_import import complete_if_done
from importer.service.dependencies import Dependencies
from importer.service.fan_out import slicing_for
from importer.service.outcomes import fail_import

_log = get_logger(__name__)


async def start_import(deps: Dependencies, command: StartImport) -> ImportJob | None:
    """Start the import ``command`` names, or resume it; the job as it stands afterwards.

    One import of a connection runs at a time (the store's rule, whoever asked and however): one
    asked for while another runs stays ``queued`` until recovery finds the connection free.
    """
    now = deps.clock()
    created = await deps.imports.create(command.queued_job(now))
    job = await deps.imports.get(command.import_id)
    if job is None:
        raise RuntimeError(f"import {command.import_id} vanished right after it was created")
    if job.account_id != command.account_id:
        _log.error("import.id_conflict", import_id=command.import_id, account_id=command.account_id)
        return None
    if job.status is ImportStatus.QUEUED:
        job = await _plan(deps, job)
        if job is None:
            return None
        if job.status is ImportStatus.QUEUED:
            # Another import of the connection runs: this one starts once it ended (recovery).
            _log.info(
                "import.waiting",
                import_id=job.import_id,
                account_id=job.account_id,
                connection_id=job.connection_id,
            )
            return job
    if job.status.terminal:
        return job
    if not job.started_published:
        await deps.events.publish_import_event(started_event(job))
        await deps.imports.set_flag(job.import_id, "started_published")
    if not job.pages_published:
        roots = await deps.ledger.pending_roots(job.import_id)
        await deps.page_publisher.publish_pages(job.account_id, roots)
        await deps.imports.set_flag(job.import_id, "pages_published")
        if not roots:
            await complete_if_done(deps, job.import_id)
    _log.info(
        "import.started" if created else "import.resumed",
        import_id=job.import_id,
        account_id=job.account_id,
        processor=job.processor.value,
        connection_id=job.connection_id,
    )
    return job


async def _plan(deps: Dependencies, job: ImportJob) -> ImportJob | None:
    try:
        source = await deps.sources.source_for(job)
    except SourceUnavailable as error:
        await fail_import(deps, job.import_id, FailureCode.CONNECTION_UNAVAILABLE, str(error))
        return None
    now = deps.clock()
    # Planned from the job's creation time, not the clock: planning again after a crash must give
    # the very same pages (their ids depend on their windows), or the import would count twice.
    resources = tuple(source.resources())
    planned = plan_import(
        job.import_id,
        resources,
        planned_at_s=int(job.created_at.timestamp()),
        policy=slicing_for(deps, job),
        growing=growing(job.processor, resources),
    )
    await deps.ledger.add_roots(
        [LedgerPage(page, PageStatus.PENDING, count_key(job.processor, page.resource)) for page in planned],
        now,
    )
    zeros = {count_key(job.processor, page.resource): 0 for page in planned}
    running = await deps.imports.mark_running(job, now, zeros)
    # Someone else planned it concurrently, it was cancelled, or another import of the connection
    # runs (it stays queued): take the job as it is now.
    return running or await deps.imports.get(job.import_id)

"""Progress while an import runs: counts in the imports document and ``ImportProgressed`` events.

A finished page's objects are counted in the process (once the page is marked done, so never
twice) and added to the imports document at most once per interval per process, in one update. Of
the processes that add, whichever wins one conditional update publishes the counts for everyone.
The counts of a completed import are the ledger's exact ones, not these.
"""

from __future__ import annotations

from importer.domain.model import ImportJob, progressed_event
from importer.service.dependencies import Dependencies


async def count_page(deps: Dependencies, job: ImportJob, count_key: str, objects: int) -> None:
    deps.local.count(job.import_id, count_key, objects)
    await report_progress(deps, job)


async def report_progress(deps: Dependencies, job: ImportJob) -> bool:
    """Add this process's counts and publish the job's progress when due; whether this call published."""
    interval_s = deps.tuning.progress_interval_s
    if not deps.local.progress_due(job.import_id, interval_s):
        return False
    counts = deps.local.take_counts(job.import_id)
    if counts:
        await deps.imports.add_progress(job.import_id, counts)
    if not await deps.imports.claim_progress(job.import_id, deps.clock(), interval_s):
        return False
    current = await deps.imports.get(job.import_id)
    if current is None:
        return False
    await deps.events.publish_import_event(progressed_event(current, current.resources))
    return True

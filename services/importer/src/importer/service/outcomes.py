"""Ending an import: failing it once, and publishing its outcome once even across crashes.

The outcome event has a deterministic ``event_id``. The flag ``outcome_published`` is set only after
the broker took the event; a crash in between leaves the flag unset and recovery publishes the same
event again, which consumers (idempotent on ``event_id``) treat as the one event it is.
"""

from __future__ import annotations

from contracts.runtime.logging import get_logger

from importer.domain.model import (
    ImportJob,
    ImportStatus,
    StartImport,
    completed_event,
    failed_event,
)
from importer.service.dependencies import Dependencies
from importer.service.metrics import count_ended

_log = get_logger(__name__)


async def fail_import(
    deps: Dependencies, import_id: str, code: str, message: str, *, credentials_version: int | None = None
) -> ImportJob | None:
    """Mark the import failed with ``code`` and publish ``ImportFailed``, unless it already ended;
    ``credentials_version`` names the credentials a processor refused (``credentials_rejected``)."""
    job = await deps.imports.fail(
        import_id, code, message, deps.clock(), credentials_version=credentials_version
    )
    if job is None:
        return None
    _log.warning("import.failed", import_id=import_id, account_id=job.account_id, code=code, reason=message)
    count_ended(job)
    await publish_outcome(deps, job)
    return job


async def fail_unstarted(
    deps: Dependencies, command: StartImport, code: str, message: str
) -> ImportJob | None:
    """Fail an import whose start could not be handled, creating its job if it never got that far."""
    await deps.imports.create(command.queued_job(deps.clock()))
    return await fail_import(deps, command.import_id, code, message)


async def publish_outcome(deps: Dependencies, job: ImportJob) -> None:
    """Publish ``ImportCompleted`` or ``ImportFailed`` for a finished job, then remember it did."""
    if job.status is ImportStatus.COMPLETED:
        await deps.events.publish_import_event(completed_event(job))
    elif job.status is ImportStatus.FAILED:
        await deps.events.publish_import_event(failed_event(job))
    else:
        raise ValueError(f"import {job.import_id} has not ended ({job.status})")
    await deps.imports.set_flag(job.import_id, "outcome_published")

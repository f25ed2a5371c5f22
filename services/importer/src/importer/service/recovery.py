"""Recovery: what a crash may have left half done is finished by whichever process looks next.

Every process runs this every few seconds. Nothing here is needed while processes live; it makes
an import finish after ``kill -9`` even where no message will be redelivered: a finalization whose
finisher died (its lease ran out), an outcome decided but not yet published, and, as a last resort,
a pending page whose request did not come back in time (published again; importing it twice is
harmless). It also starts an import left queued while another import of its connection ran.
"""

from __future__ import annotations

from datetime import timedelta

from contracts.runtime.logging import get_logger

from importer.domain.model import ImportStatus, StartImport
from importer.service.complete_import import complete_if_done, finalize
from importer.service.dependencies import Dependencies
from importer.service.outcomes import publish_outcome
from importer.service.start_import import start_import

_log = get_logger(__name__)
STALE_PAGES_PER_ROUND = 500
#: A queued import is left to its trigger's handler this long before recovery tries to start it.
QUEUED_GRACE_S = 5.0


async def recover(deps: Dependencies) -> int:
    """One round over the imports needing attention; how many it acted on."""
    acted = 0
    now = deps.clock()
    grace = timedelta(seconds=deps.tuning.outcome_grace_s)
    queued_before = now - timedelta(seconds=QUEUED_GRACE_S)
    for job in await deps.imports.needing_attention(now, queued_before=queued_before):
        if job.status is ImportStatus.QUEUED:
            started = await start_import(
                deps,
                StartImport(
                    import_id=job.import_id,
                    account_id=job.account_id,
                    connection_id=job.connection_id,
                    processor=job.processor,
                    contact_email=job.contact_email,
                    mode=job.mode,
                ),
            )
            if started is not None and started.status is not ImportStatus.QUEUED:
                acted += 1
            continue
        if job.status.terminal:
            # Given a moment first: whoever ended the import is publishing its outcome right now.
            ended_long_ago = job.finished_at is None or job.finished_at < now - grace
            if not job.outcome_published and ended_long_ago:
                await publish_outcome(deps, job)
                acted += 1
            continue
        if job.status is ImportStatus.FINALIZING:
            claimed = await deps.imports.claim_finalization(job.import_id, now, deps.tuning.finalize_lease_s)
            if claimed is not None:
                _log.warning("import.finalize_resumed", import_id=job.import_id)
                await finalize(deps, claimed)
                acted += 1
            continue
        if job.status is ImportStatus.RUNNING:
            stale = await deps.ledger.claim_stale(
                job.import_id,
                now - timedelta(seconds=deps.tuning.stale_page_after_s),
                now,
                STALE_PAGES_PER_ROUND,
            )
            if stale:
                _log.warning("pages.republished", import_id=job.import_id, pages=len(stale))
                await deps.page_publisher.publish_pages(job.account_id, stale)
                acted += 1
            elif await complete_if_done(deps, job.import_id) is not None:
                acted += 1
    return acted

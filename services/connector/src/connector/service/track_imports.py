"""Use case: follow the importer's events so the connection can tell how its latest import went."""

from __future__ import annotations

from contracts.events import Event, ImportCompleted, ImportFailed, ImportStarted

from connector.domain.connection import ImportStatus
from connector.service.dependencies import Dependencies


async def track_import(deps: Dependencies, event: Event) -> str:
    """Record ``event`` on the connection whose latest import it concerns; what was done, for the log."""
    match event:
        case ImportStarted():
            status, error_code = ImportStatus.RUNNING, None
        case ImportCompleted():
            status, error_code = ImportStatus.COMPLETED, None
        case ImportFailed():
            status, error_code = ImportStatus.FAILED, event.code
        case _:
            return "ignored"
    recorded = await deps.connections.record_import(
        event.account_id, event.import_id, status=status, at=event.occurred_at, error_code=error_code
    )
    return status.value if recorded else "not_latest"

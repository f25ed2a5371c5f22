"""Use case: follow the importer's events so the connection can tell how its latest import went.

An import that failed because the processor answered 401 to the stored credentials
(``credentials_rejected``) also means the account's connection lost them.
"""

from __future__ import annotations

from typing import Final

from contracts.connections import ConnectionStatus
from contracts.events import Event, ImportCompleted, ImportFailed, ImportStarted

from connector.domain.connection import CREDENTIALS_REJECTED, ImportStatus
from connector.service.dependencies import Dependencies
from connector.service.lose_credentials import lose_credentials

#: ``ImportFailed.code`` of an import the processor refused the stored credentials to.
IMPORT_CREDENTIALS_REJECTED: Final = CREDENTIALS_REJECTED


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
    if (
        isinstance(event, ImportFailed)
        and error_code == IMPORT_CREDENTIALS_REJECTED
        and await _lose_current(deps, event.account_id, event.credentials_version)
    ):
        return "credentials_lost"
    return status.value if recorded else "not_latest"


async def _lose_current(deps: Dependencies, account_id: str, credentials_version: int | None) -> bool:
    """The account's current connection lost its credentials: imports only ever read the current
    one (the importer ends those of a connection that is disconnected); not when the refused
    credentials (``credentials_version``) were replaced by a reconnect since."""
    current = await deps.connections.active(account_id)
    if current is None or current.status is not ConnectionStatus.CONNECTED:
        return False
    return await lose_credentials(
        deps,
        current.connection_id,
        CREDENTIALS_REJECTED,
        account_id=account_id,
        credentials_version=credentials_version,
    )

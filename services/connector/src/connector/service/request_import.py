"""Use case: import a connected account's billing history again (the re-sync).

One import of a connection at a time: while its latest import is queued or running, another is
refused (``import_in_progress``), by a conditional write so that two racing requests cannot both
pass. The importer keeps the same rule for imports that reach it another way.
"""

from __future__ import annotations

from contracts.connections import ConnectionStatus
from contracts.events import ImportRequested
from contracts.topics import CONNECTIONS

from connector.domain.connection import (
    IMPORT_IN_PROGRESS_STATUSES,
    Connection,
    ImportStatus,
    LatestImport,
    new_import_id,
)
from connector.domain.ports import Outgoing
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.dependencies import Dependencies
from connector.service.disconnect import no_connection
from connector.service.outbox import deliver


def import_in_progress() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.IMPORT_IN_PROGRESS,
        "An import of this account is already queued or running. Wait for it to finish, then ask again.",
    )


def not_connected() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.NOT_CONNECTED,
        "This account has no connected payment processor to import from. Connect Stripe or Chargebee first.",
    )


async def request_import(deps: Dependencies, account_id: str) -> str:
    """The new import's id; the importer starts it when it reads ``ImportRequested``."""
    current = await deps.connections.active(account_id)
    if current is None and await deps.connections.latest(account_id) is None:
        raise no_connection()
    if (
        current is None
        or current.status is not ConnectionStatus.CONNECTED
        or current.processor is None
        or current.mode is None
        or current.processor_account_id is None
    ):
        raise not_connected()
    if _in_progress(current):
        raise import_in_progress()
    now = deps.clock()
    import_id = new_import_id()
    outgoing = [
        Outgoing(
            CONNECTIONS,
            ImportRequested(
                account_id=account_id,
                connection_id=current.connection_id,
                processor=current.processor,
                mode=current.mode,
                processor_account_id=current.processor_account_id,
                contact_email=current.contact_email or "",
                import_id=import_id,
            ),
        )
    ]
    latest = LatestImport(import_id=import_id, status=ImportStatus.QUEUED, requested_at=now)
    if not await deps.connections.request_import(current.connection_id, latest, outgoing):
        # Changed meanwhile: disconnected, or another request started an import first.
        now_current = await deps.connections.get(current.connection_id)
        if (
            now_current is not None
            and now_current.status is ConnectionStatus.CONNECTED
            and _in_progress(now_current)
        ):
            raise import_in_progress()
        raise not_connected()
    await deliver(deps, current.connection_id, outgoing)
    return import_id


def _in_progress(connection: Connection) -> bool:
    latest = connection.latest_import
    return latest is not None and latest.status in IMPORT_IN_PROGRESS_STATUSES

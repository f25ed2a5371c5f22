"""A reconnected connection (``ProcessorReconnected``): its sync resumes, or a full import starts.

The connector decided which, from this service's ``sync_state``, and named the import when one is
needed (``import_id``): a gap beyond the processor's event history, or a sync that never started. The
credentials this process holds for the connection (page sources, sync readers) are the lost ones:
they are dropped first, so the next read opens the new ones. Redelivery is harmless: the import
starts once (idempotent on its id), and resuming a running sync only makes its next poll due now. A
redelivery after the connection was lost again or disconnected does nothing: it must be connected.
"""

from __future__ import annotations

from collections.abc import Callable

from contracts.connections import ConnectionStatus
from contracts.events import ProcessorReconnected
from contracts.runtime.logging import get_logger

from importer.domain.model import StartImport
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_lifecycle import ConnectionLookup

_log = get_logger(__name__)


async def resume_after_reconnect(
    sync: SyncDependencies,
    connection_of: ConnectionLookup,
    event: ProcessorReconnected,
    *,
    forget_sources: Callable[[str], None],
) -> str:
    """What was done, for the log line and tests: ``full_import``, ``resumed``, or why nothing.

    ``forget_sources``: drops the import pipeline's page sources of a connection.
    """
    connection_id = event.connection_id
    forget_sources(connection_id)
    sync.readers.forget(connection_id)
    connection = await connection_of(connection_id)
    if (
        connection is None
        or connection.account_id != event.account_id
        or connection.status is not ConnectionStatus.CONNECTED
    ):
        outcome = "not_connected"
    elif event.import_id is not None:
        await sync.start_full_import(
            StartImport(
                import_id=event.import_id,
                account_id=event.account_id,
                connection_id=connection_id,
                processor=event.processor,
                contact_email=connection.contact_email or "",
                mode=event.mode,
            ),
        )
        outcome = "full_import"
    elif await sync.states.resume(connection_id, sync.clock(), sync.interval_s):
        outcome = "resumed"
    else:
        outcome = "no_sync_state"
    _log.info("sync.reconnected", connection_id=connection_id, import_id=event.import_id, outcome=outcome)
    return outcome

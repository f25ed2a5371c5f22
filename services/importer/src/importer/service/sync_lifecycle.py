"""When a connection's sync starts and stops: after each completed import, until disconnected.

An import's completion (``ImportCompleted``, consumed in its own group) starts, or restarts, the
connection's sync from a minute before that import began, so whatever changed while it ran is
applied by the first poll. A disconnection stops it. Both are idempotent: a redelivered event sets
the same state again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.connections import StoredConnection
from contracts.events import ImportCompleted
from contracts.runtime.logging import get_logger
from contracts.sync import SyncStatus

from importer.domain.ports import ImportRepository
from importer.domain.sync import SyncState, cursor_for_import
from importer.service.sync_dependencies import SyncDependencies

_log = get_logger(__name__)

ConnectionLookup = Callable[[str], Awaitable[StoredConnection | None]]


async def start_after_import(
    deps: SyncDependencies,
    imports: ImportRepository,
    connection_of: ConnectionLookup,
    event: ImportCompleted,
) -> bool:
    job = await imports.get(event.import_id)
    if job is None:
        return False
    connection = await connection_of(job.connection_id)
    if connection is None or connection.processor_account_id is None:
        return False
    cursor = cursor_for_import(job.created_at)
    state = SyncState(
        connection_id=job.connection_id,
        account_id=job.account_id,
        processor=job.processor,
        processor_account_id=connection.processor_account_id,
        status=SyncStatus.CATCHING_UP.value,
        cursor_s=int(cursor.timestamp()),
        contact_email=job.contact_email,
        mode=None if job.mode is None else job.mode.value,
    )
    await deps.states.begin(state, deps.clock(), deps.interval_s)
    _log.info(
        "sync.started", connection_id=job.connection_id, account_id=job.account_id, import_id=job.import_id
    )
    return True

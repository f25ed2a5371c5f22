"""When a connection's sync starts and stops: after each completed import, until disconnected or
its credentials are lost.

An import's completion (``ImportCompleted``, consumed in its own group) starts, or restarts, the
connection's sync from a minute before that import began, so whatever changed while it ran is
applied by the first poll. A disconnection stops it at the next poll; a loss of credentials
(``ConnectionLost``) at once. All are idempotent: a redelivered event sets the same state again.

Only for a connection still ``connected``: a completion consumed late, after a loss or an erase,
starts nothing. The check is made again after the state is written, because the loss or the erase
may land between the check and the write (the erase removes the state first, so a write after it
would leave a state behind it): the connection's status changes before its loss stops the sync or
its erase removes the state, so either the second read sees the change and the state is undone
here (stopped for a loss, removed for a disconnection), or the change came after the write and its
own stop or removal acts on the written state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.connections import ConnectionStatus, StoredConnection
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
    if (
        connection is None
        or connection.processor_account_id is None
        # Disconnected, or lost its credentials while the import ran: nothing to keep fresh.
        or connection.status is not ConnectionStatus.CONNECTED
    ):
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
    after = await connection_of(job.connection_id)
    if after is None or after.status is not ConnectionStatus.CONNECTED:
        await _undo_start(deps, job.connection_id, after)
        return False
    _log.info(
        "sync.started", connection_id=job.connection_id, account_id=job.account_id, import_id=job.import_id
    )
    return True


async def _undo_start(
    deps: SyncDependencies, connection_id: str, connection: StoredConnection | None
) -> None:
    """The connection stopped being connected while its sync was being started."""
    deps.readers.forget(connection_id)
    if connection is None or connection.status is ConnectionStatus.DISCONNECTED:
        # Disconnected (perhaps erased, its state already removed): nothing of it is kept.
        await deps.states.remove(connection_id)
        outcome = "removed"
    else:
        # Lost its credentials: stopped, as ConnectionLost leaves it, so a reconnect resumes it.
        await deps.states.stop(connection_id, f"the connection is {connection.status.value}", deps.clock())
        outcome = "stopped"
    _log.info("sync.start_undone", connection_id=connection_id, outcome=outcome)


async def stop_after_loss(deps: SyncDependencies, connection_id: str, reason: str) -> bool:
    """The connection lost its credentials: its sync stops now, and its reader (with the decrypted
    credentials) leaves memory. ``False`` (nothing stopped) when it is connected again: a late
    ``ConnectionLost`` must not stop the sync a reconnect resumed."""
    connection = await deps.readers.connection(connection_id)
    if connection is not None and connection.status is ConnectionStatus.CONNECTED:
        return False
    deps.readers.forget(connection_id)
    stopped = await deps.states.stop(connection_id, reason, deps.clock())
    _log.info("sync.stopped", connection_id=connection_id, reason=reason, was_running=stopped)
    return True

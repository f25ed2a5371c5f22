"""Sync's consumers: the sync topic (ticks and webhook events), and the imports and connections
that start and stop a connection's sync. Parse, delegate, one log line per unit of work."""

from __future__ import annotations

from contracts.events import Event, ImportCompleted
from contracts.runtime.kafka import EventHandler
from contracts.sync import ProcessorEventReceived
from structlog.contextvars import bound_contextvars

from importer.domain.ports import ImportRepository
from importer.domain.sync_messages import SyncDue
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_lifecycle import ConnectionLookup, start_after_import
from importer.service.sync_poll import apply_webhook_event, poll_account


async def handle_sync_message(deps: SyncDependencies, parsed: SyncDue | ProcessorEventReceived) -> None:
    if isinstance(parsed, SyncDue):
        with bound_contextvars(account_id=parsed.account_id, connection_id=parsed.connection_id):
            await poll_account(deps, parsed.connection_id)
    elif isinstance(parsed, ProcessorEventReceived):
        await apply_webhook_event(deps, parsed)


def sync_trigger_handler(
    deps: SyncDependencies, imports: ImportRepository, connection_of: ConnectionLookup
) -> EventHandler:
    """``ImportCompleted`` (imports.v1) starts, or restarts, the connection's sync."""

    async def handle(event: Event) -> None:
        with bound_contextvars(account_id=event.account_id, event_type=event.type):
            if isinstance(event, ImportCompleted):
                await start_after_import(deps, imports, connection_of, event)

    return handle

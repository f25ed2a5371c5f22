"""Use cases of sync: a poll of one account's event list, a webhook's event, starting and stopping.

A poll (one tick message from the scheduler) reads the account's events from its cursor, applies
each changed object once (``sync_apply``), then moves the cursor; a crash before that redelivers
the tick or leaves the cursor where it was, and the next poll re-applies the same objects, which is
harmless (re-read, conditional writes). A webhook's event applies its object at once and is
remembered so the next poll skips it. A connection that is not connected any more stops its sync;
a Stripe cursor older than the event history asks for a fresh full import instead.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from contracts.events import Mode
from contracts.runtime.logging import get_logger
from contracts.sync import ProcessorEventReceived, SyncStatus

from importer.domain.model import StartImport
from importer.domain.ports import SourceUnavailable
from importer.domain.source import SourceError, SourceErrorCode
from importer.domain.sync import ObjectRef, SyncState, beyond_history, plan_poll, resource_of
from importer.service.sync_apply import apply_object
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_metrics import SYNC_LAG, SYNC_POLLS, SYNC_RUNNING, SYNC_WEBHOOK_EVENTS

_log = get_logger(__name__)
_RESYNC_NAMESPACE: Final = uuid.UUID("9c0f4f54-53f3-4d8e-8f4a-6a1de3b1e7a2")
#: Processor answers that mean the credentials are gone: sync stops (the lifecycle reconnects).
_LOST: Final = (SourceErrorCode.KEY_REJECTED, SourceErrorCode.INSUFFICIENT_PERMISSIONS)


async def poll_account(deps: SyncDependencies, connection_id: str) -> str:
    """One poll of a connection's event list; what happened (for the log line and tests)."""
    state = await deps.states.get(connection_id)
    outcome = await _poll(deps, connection_id, state)
    if state is not None:
        SYNC_POLLS.labels(state.processor.value, outcome).inc()
    return outcome


async def _poll(deps: SyncDependencies, connection_id: str, state: SyncState | None) -> str:
    if state is None or state.status == SyncStatus.STOPPED or state.resync_import_id is not None:
        return "skipped"
    started = deps.clock()
    cursor = datetime.fromtimestamp(state.cursor_s, UTC)
    if beyond_history(state.processor, cursor, started):
        return await _full_import_instead(deps, state, started)
    try:
        reader = await deps.readers.reader_for(state.connection_id, state.account_id)
        listed = await reader.events_since(state.cursor_s)
        plan = plan_poll(state.processor, listed, cursor_s=state.cursor_s, applied_ids=state.applied_ids)
        for ref in plan.objects:
            await apply_object(deps, state, reader, ref)
    except SourceUnavailable as error:
        await deps.states.stop(connection_id, str(error), deps.clock())
        return "stopped"
    except SourceError as error:
        if error.code in _LOST:
            await deps.states.stop(connection_id, error.code.value, deps.clock())
            return "stopped"
        raise
    newest = None if plan.newest_created is None else datetime.fromtimestamp(plan.newest_created, UTC)
    await deps.states.record_poll(
        connection_id,
        cursor_s=plan.cursor_s,
        applied_ids=plan.applied_ids,
        last_event_at=newest,
        synced_through=started,
        now=deps.clock(),
    )
    _log.info(
        "sync.polled",
        connection_id=connection_id,
        account_id=state.account_id,
        events=plan.new_events,
        objects=len(plan.objects),
        cursor_s=plan.cursor_s,
    )
    return "polled"


async def apply_webhook_event(deps: SyncDependencies, event: ProcessorEventReceived) -> str:
    """Apply the object a webhook's event names, for every running sync of its processor account."""
    resource = resource_of(event.processor, event.object_type)
    if resource is None or not event.object_id:
        return "ignored"
    states = await deps.states.running_for(event.processor.value, event.processor_account_id)
    outcome = "ignored"
    for state in states:
        if state.resync_import_id is not None or event.processor_event_id in state.applied_ids:
            continue
        try:
            reader = await deps.readers.reader_for(state.connection_id, state.account_id)
            outcome = await apply_object(deps, state, reader, ObjectRef(resource, event.object_id))
        except SourceUnavailable:
            continue  # the next poll stops this sync
        await deps.states.record_applied(state.connection_id, event.processor_event_id, event.created)
    SYNC_WEBHOOK_EVENTS.labels(event.processor.value, outcome).inc()
    _log.info(
        "sync.webhook_applied",
        processor=event.processor.value,
        event_type=event.event_type,
        processor_event_id=event.processor_event_id,
        outcome=outcome,
    )
    return outcome


async def _full_import_instead(deps: SyncDependencies, state: SyncState, now: datetime) -> str:
    import_id = f"imp_{uuid.uuid5(_RESYNC_NAMESPACE, f'{state.connection_id}:{state.cursor_s}').hex}"
    await deps.states.catch_up_with_import(state.connection_id, import_id, now)
    await deps.start_full_import(
        StartImport(
            import_id=import_id,
            account_id=state.account_id,
            connection_id=state.connection_id,
            processor=state.processor,
            contact_email=state.contact_email,
            mode=None if state.mode is None else Mode(state.mode),
        )
    )
    _log.warning(
        "sync.beyond_event_history",
        connection_id=state.connection_id,
        import_id=import_id,
        cursor_s=state.cursor_s,
    )
    return "full_import"


async def emit_due_ticks(deps: SyncDependencies, *, limit: int = 500) -> int:
    """Claim the syncs due for a poll and publish one tick each; how many."""
    due = await deps.states.claim_due(deps.clock(), deps.interval_s, limit)
    if due:
        await deps.publisher.publish_ticks(due)
    return len(due)


async def measure_lag(deps: SyncDependencies) -> float:
    """Set the lag gauge from the store: the running sync furthest behind; its lag in seconds."""
    now = deps.clock()
    running, oldest = await deps.states.lag_summary()
    lag = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    SYNC_LAG.set(lag)
    SYNC_RUNNING.set(running)
    return lag

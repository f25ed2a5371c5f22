"""Use cases of sync: a poll of one account's event list, a webhook's event, starting and stopping.

A poll (one tick message from the scheduler) reads the account's events from its cursor, applies
each changed object once (``sync_apply``), then moves the cursor; a crash before that redelivers the
tick or leaves the cursor where it was, and the next poll re-applies the same objects, which is
harmless (re-read, conditional writes). A poll reads a bounded number of pages of events: a Stripe
list cut there (newest first) is read on by the next polls from where it stopped, the cursor and
``synced_through`` staying until it ends (``domain.sync.EventSweep``). A poll applies its distinct
objects concurrently (a bounded number at a time, ``sync_work``), and one connection's polls go one
at a time. A webhook's event applies its object at once and is remembered so the next poll skips it;
it needs no re-read when one was sent after the connector received it (allowing :data:`CLOCK_MARGIN`
between the two services' clocks) and has finished: a burst of events about one object costs few
re-reads. A connection that is not connected any more stops its sync; a Stripe cursor older than the
event history asks for a fresh full import instead.

Dead credentials (the processor answers 401, or Stripe's event list holds the account's
deauthorization) stop the sync too, and are reported to the connector (``CredentialsLost``), which
makes the connection ``needs_reconnect``. The report is published before the stop is recorded: a
crash between the two repeats the report at the next poll, which the connector ignores.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from contracts.connections import ConnectionStatus, StoredConnection
from contracts.events import Mode
from contracts.runtime.logging import get_logger
from contracts.sync import CredentialsLost, ProcessorEventReceived, SyncStatus

from importer.domain.model import ImportStatus, StartImport
from importer.domain.ports import SourceUnavailable
from importer.domain.source import SourceError, SourceErrorCode
from importer.domain.sync import (
    ObjectRef,
    PollPlan,
    ProcessorChange,
    SyncState,
    beyond_history,
    deauthorization_in,
    plan_poll,
    resource_of,
)
from importer.domain.sync_ports import SyncReader
from importer.service.sync_apply import apply_object
from importer.service.sync_dependencies import SyncDependencies
from importer.service.sync_metrics import SYNC_LAG, SYNC_POLLS, SYNC_RUNNING, SYNC_WEBHOOK_EVENTS

_log = get_logger(__name__)
_RESYNC_NAMESPACE: Final = uuid.UUID("9c0f4f54-53f3-4d8e-8f4a-6a1de3b1e7a2")
#: How long after a failed full import (one a sync beyond the event history waits for) the next
#: poll starts another: the failure's cause (the processor down, say) gets time to pass.
RESYNC_RETRY_AFTER: Final = timedelta(minutes=15)
#: Processor answers that mean sync cannot go on: it stops (the lifecycle reconnects).
_LOST: Final = (SourceErrorCode.KEY_REJECTED, SourceErrorCode.INSUFFICIENT_PERMISSIONS)
#: How far the connector's clock (``received_at``) and the importer's may disagree: a re-read covers a
#: webhook's event only when it was sent at least this long after the event was received.
CLOCK_MARGIN: Final = timedelta(seconds=1)


async def poll_account(deps: SyncDependencies, connection_id: str) -> str:
    """One poll of a connection's event list; what happened (for the log line and tests)."""
    async with deps.work.one_poll(connection_id):
        state = await deps.states.get(connection_id)
        outcome = await _poll(deps, connection_id, state)
    if state is not None:
        SYNC_POLLS.labels(state.processor.value, outcome).inc()
    return outcome


async def _poll(deps: SyncDependencies, connection_id: str, state: SyncState | None) -> str:
    if (
        state is None
        or state.status == SyncStatus.STOPPED
        # Waiting for a full import: it runs, or completed (which restarts the sync itself).
        or (state.resync_import_id is not None and not await _resync_failed(deps, state.resync_import_id))
    ):
        return "skipped"
    started = deps.clock()
    connection = await _still_connected(deps, connection_id, started)
    if connection is None:
        return "stopped"
    if state.resync_import_id is not None:
        return await _full_import_instead(deps, state, started, after=state.resync_import_id)
    cursor = datetime.fromtimestamp(state.cursor_s, UTC)
    if beyond_history(state.processor, cursor, started):
        return await _full_import_instead(deps, state, started)
    plan = await _read_and_apply(deps, state, started, connection.reconnected_at or connection.connected_at)
    if isinstance(plan, str):
        return plan
    newest = None if plan.newest_created is None else datetime.fromtimestamp(plan.newest_created, UTC)
    await deps.states.record_poll(
        connection_id,
        cursor_s=plan.cursor_s,
        applied_ids=plan.applied_ids,
        last_event_at=newest,
        synced_through=plan.synced_through,
        sweep=plan.sweep,
        now=deps.clock(),
    )
    _log.info(
        "sync.polled",
        connection_id=connection_id,
        account_id=state.account_id,
        events=plan.new_events,
        objects=len(plan.objects),
        cursor_s=plan.cursor_s,
        sweeping=plan.sweep is not None,
    )
    return "polled" if plan.synced_through is not None else "polled_partly"


async def _still_connected(
    deps: SyncDependencies, connection_id: str, now: datetime
) -> StoredConnection | None:
    """The connection, if it may still be synced; if not, its sync stops here."""
    connection = await deps.readers.connection(connection_id)
    if connection is not None and connection.status is ConnectionStatus.CONNECTED:
        return connection
    # Disconnected, or its credentials were lost: a cached reader must not read on.
    deps.readers.forget(connection_id)
    status = "gone" if connection is None else connection.status.value
    await deps.states.stop(connection_id, f"the connection is {status}", now)
    return None


async def _read_and_apply(
    deps: SyncDependencies, state: SyncState, started: datetime, connected_since: datetime | None
) -> PollPlan | str:
    """Read the event list from the cursor (going on with the sweep under way, if any) and apply
    each changed object once: the plan applied, or what ended the poll instead (``stopped``,
    ``credentials_lost``)."""
    try:
        reader = await deps.readers.reader_for(state.connection_id, state.account_id)
        after = None if state.sweep is None else state.sweep.after_id
        listed = await reader.events_since(state.cursor_s, after=after)
        deauthorized = deauthorization_in(
            state.processor,
            listed.events,
            cursor_s=state.cursor_s,
            applied_ids=state.applied_ids,
            connected_since=connected_since,
        )
        if deauthorized is not None:
            return await _credentials_lost(deps, state, "deauthorized", deauthorized)
        # Every listed change happened before the list came back: a re-read sent since covers it.
        listed_at = deps.clock()
        plan = plan_poll(
            state.processor,
            listed,
            cursor_s=state.cursor_s,
            applied_ids=state.applied_ids,
            started=started,
            sweep=state.sweep,
        )
        await _apply_all(deps, state, reader, plan.objects, listed_at)
    except SourceUnavailable as error:
        await deps.states.stop(state.connection_id, str(error), deps.clock())
        return "stopped"
    except SourceError as error:
        if error.code is SourceErrorCode.KEY_REJECTED:
            if await _replaced_since(deps, state.connection_id, error.credentials_version):
                # A reader built before a reconnect: the next poll reads with the new credentials.
                deps.readers.forget(state.connection_id)
                return "credentials_replaced"
            return await _credentials_lost(
                deps, state, "credentials_rejected", credentials_version=error.credentials_version
            )
        if error.code in _LOST:
            await deps.states.stop(state.connection_id, error.code.value, deps.clock())
            return "stopped"
        raise
    return plan


async def _replaced_since(deps: SyncDependencies, connection_id: str, refused: int | None) -> bool:
    """Whether the connection holds newer credentials than the ones the processor refused."""
    if refused is None:
        return False
    connection = await deps.readers.connection(connection_id)
    return connection is not None and connection.credentials_version > refused


async def _apply_all(
    deps: SyncDependencies,
    state: SyncState,
    reader: SyncReader,
    refs: Sequence[ObjectRef],
    listed_at: datetime,
) -> None:
    """Apply each object, concurrently (``sync_work`` bounds how many re-read at once); the first
    failure cancels the rest and is raised (the poll is tried again, the cursor has not moved)."""
    tasks = [
        asyncio.ensure_future(apply_object(deps, state, reader, ref, changed_before=listed_at))
        for ref in refs
    ]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _credentials_lost(
    deps: SyncDependencies,
    state: SyncState,
    reason: Literal["deauthorized", "credentials_rejected"],
    event: ProcessorChange | None = None,
    *,
    credentials_version: int | None = None,
) -> str:
    """Report the loss to the connector, then stop: the sync resumes only after a reconnect. A 401
    names the credentials refused (``credentials_version``): if a reconnect replaced them meanwhile
    the connector ignores the report, and its ``ProcessorReconnected`` starts the sync again."""
    await deps.publisher.report_credentials_lost(
        CredentialsLost(
            account_id=state.account_id,
            connection_id=state.connection_id,
            processor=state.processor,
            reason=reason,
            processor_event_id=None if event is None else event.event_id,
            credentials_version=credentials_version,
        )
    )
    now = deps.clock()
    if event is not None:
        # Remembered as applied, so a sync resumed after a reconnect does not stop on it again.
        await deps.states.record_applied(
            state.connection_id, event.event_id, datetime.fromtimestamp(event.created, UTC)
        )
    deps.readers.forget(state.connection_id)
    await deps.states.stop(state.connection_id, reason, now)
    _log.warning(
        "sync.credentials_lost", connection_id=state.connection_id, account_id=state.account_id, reason=reason
    )
    return "credentials_lost"


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
            outcome = await apply_object(
                deps,
                state,
                reader,
                ObjectRef(resource, event.object_id),
                changed_before=event.received_at + CLOCK_MARGIN,
            )
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


async def _resync_failed(deps: SyncDependencies, import_id: str) -> bool:
    """Whether the full import a sync waits for failed :data:`RESYNC_RETRY_AFTER` ago or more:
    nothing would restart the sync then (only a completion does), so the poll starts another."""
    if deps.import_of is None:
        return False
    job = await deps.import_of(import_id)
    if job is None or job.status is not ImportStatus.FAILED:
        return False
    failed_at = job.finished_at or job.created_at
    return deps.clock() - failed_at >= RESYNC_RETRY_AFTER


async def _full_import_instead(
    deps: SyncDependencies, state: SyncState, now: datetime, *, after: str | None = None
) -> str:
    """Start a fresh full import in place of the event list; ``after``: the failed one it follows
    (each attempt has its own id, the same for the same failure, so a redelivered tick starts none)."""
    name = f"{state.connection_id}:{state.cursor_s}" + ("" if after is None else f":after:{after}")
    import_id = f"imp_{uuid.uuid5(_RESYNC_NAMESPACE, name).hex}"
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
        after_failed_import=after,
    )
    return "full_import" if after is None else "full_import_again"


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

"""The ``connections.v1`` consumer: a connection or a re-sync starts an import, a disconnection stops
it, one asking for it erases the account's processor data, a reconnect resumes sync (or starts the
import it names), a loss of credentials stops its imports and its sync."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Final

from contracts.events import (
    CONNECTION_EVENTS,
    ConnectionLost,
    Event,
    ImportRequested,
    ProcessorConnected,
    ProcessorDisconnected,
    ProcessorReconnected,
)
from contracts.runtime.dead_letter import DeadLetter, OnDeadLetter
from contracts.runtime.kafka import EventHandler
from contracts.runtime.logging import get_logger, redact_text
from pydantic import ValidationError
from structlog.contextvars import bound_contextvars

from importer.domain.model import FailureCode, StartImport
from importer.service.cancel_imports import cancel_imports
from importer.service.dependencies import Dependencies
from importer.service.erase_account import erase_account
from importer.service.outcomes import fail_unstarted
from importer.service.start_import import start_import

_log = get_logger(__name__)
#: Derives the import id of a ``ProcessorConnected`` that carries none, the same on every delivery.
_IMPORT_ID_NAMESPACE: Final = uuid.UUID("0b6b7f0e-5a43-4c55-8f0e-2d8b6c1f4a90")


def import_id_of(event: ProcessorConnected) -> str:
    return event.import_id or str(uuid.uuid5(_IMPORT_ID_NAMESPACE, str(event.event_id)))


def start_command(event: ProcessorConnected | ImportRequested) -> StartImport:
    return StartImport(
        import_id=event.import_id if isinstance(event, ImportRequested) else import_id_of(event),
        account_id=event.account_id,
        connection_id=event.connection_id,
        processor=event.processor,
        contact_email=event.contact_email,
        mode=event.mode,
    )


OnReconnected = Callable[[ProcessorReconnected], Awaitable[object]]
#: Stops a connection's sync (``connection_id``, reason) unless it was reconnected since, which it
#: answers ``False``: wired to sync by the composition root.
StopSync = Callable[[str, str], Awaitable[bool]]


def connection_event_handler(
    deps: Dependencies,
    *,
    on_reconnected: OnReconnected | None = None,
    stop_sync: StopSync | None = None,
) -> EventHandler:
    """``on_reconnected``: sync's answer to ``ProcessorReconnected`` (resume, or a full import);
    ``stop_sync``: sync's answer to ``ConnectionLost``."""

    async def handle(event: Event) -> None:
        with bound_contextvars(
            account_id=event.account_id, event_type=event.type, event_id=str(event.event_id)
        ):
            if isinstance(event, ProcessorConnected | ImportRequested):
                await start_import(deps, start_command(event))
            elif isinstance(event, ProcessorDisconnected):
                ended = await cancel_imports(deps, event.connection_id)
                _log.info("connection.disconnected", connection_id=event.connection_id, imports_ended=ended)
                if event.erase and deps.erasure is not None:
                    await erase_account(deps.erasure, event.account_id, event.connection_id)
            elif isinstance(event, ProcessorReconnected) and on_reconnected is not None:
                await on_reconnected(event)
            elif isinstance(event, ConnectionLost):
                # False when the connection was reconnected since (a late redelivery): nothing stops.
                if stop_sync is not None and not await stop_sync(event.connection_id, event.reason):
                    _log.info("connection.lost_already_reconnected", connection_id=event.connection_id)
                    return
                ended = await cancel_imports(
                    deps,
                    event.connection_id,
                    event.reason,
                    f"{event.processor.value} no longer accepts the stored credentials ({event.reason})",
                )
                _log.info(
                    "connection.lost",
                    connection_id=event.connection_id,
                    reason=event.reason,
                    imports_ended=ended,
                )

    return handle


def connection_dead_letter_handler(deps: Dependencies) -> OnDeadLetter:
    """A connection event no retry could handle: its import fails (once) instead of never starting."""

    async def on_dead_letter(letter: DeadLetter) -> None:
        try:
            event = CONNECTION_EVENTS.parse(letter.body)
        except (ValidationError, ValueError):
            return
        if isinstance(event, ProcessorConnected | ImportRequested):
            await fail_unstarted(
                deps,
                start_command(event),
                FailureCode.START_FAILED,
                f"the import could not be started: {redact_text(str(letter.error))[:300]}",
            )

    return on_dead_letter

"""Use case: the business goes on without a processor and loses the features that need one."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from contracts.connections import ConnectionStatus
from contracts.events import SKIP_DISABLED_FEATURES, Feature, ProcessorSkipped
from contracts.topics import CONNECTIONS

from connector.domain.connection import Connection, new_connection_id
from connector.domain.ports import Outgoing
from connector.service.dependencies import Dependencies
from connector.service.opening import open_connection, refuse_if_connected
from connector.service.outbox import deliver


@dataclass(frozen=True, slots=True)
class SkipRequest:
    account_id: str
    contact_email: str | None = None
    request_event_id: UUID | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    disabled_features: tuple[Feature, ...]


async def skip_connection(deps: Dependencies, request: SkipRequest) -> Skipped:
    announcement = ProcessorSkipped(
        account_id=request.account_id,
        disabled_features=list(SKIP_DISABLED_FEATURES),
        contact_email=request.contact_email,
    )
    outgoing = [Outgoing(CONNECTIONS, announcement)]
    current = await refuse_if_connected(deps, request.account_id)
    if current is not None and current.status is ConnectionStatus.SKIPPED:
        # Skipping twice is the same decision; it is announced again so the asker gets its answer.
        await deps.connections.add_events(current.connection_id, outgoing)
        await deliver(deps, current.connection_id, outgoing)
        return Skipped(SKIP_DISABLED_FEATURES)
    skip = Connection(
        connection_id=request.connection_id or new_connection_id(),
        account_id=request.account_id,
        status=ConnectionStatus.SKIPPED,
        contact_email=request.contact_email,
        created_at=deps.clock(),
        request_event_id=request.request_event_id,
    )
    await open_connection(deps, skip, outgoing)
    return Skipped(SKIP_DISABLED_FEATURES)

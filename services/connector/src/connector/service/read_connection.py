"""Use case: what the account's connection is, and which features it has because of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from contracts.connections import ConnectionStatus
from contracts.events import Feature, Mode, Processor
from contracts.sync import SyncStatus, sync_view

from connector.domain.connection import LatestImport, feature_reasons, features_of
from connector.service.dependencies import Dependencies
from connector.service.disconnect import no_connection


@dataclass(frozen=True, slots=True)
class SyncSummary:
    status: SyncStatus
    last_event_at: datetime | None
    lag_s: float | None


#: A connection the importer is not syncing (yet): no import of it completed, or it was skipped.
NOT_SYNCING: Final = SyncSummary(status=SyncStatus.STOPPED, last_event_at=None, lag_s=None)


@dataclass(frozen=True, slots=True)
class ConnectionSummary:
    status: ConnectionStatus
    processor: Processor | None
    mode: Mode | None
    connected_at: datetime | None
    features: Mapping[Feature, bool]
    latest_import: LatestImport | None
    #: Why a feature is off, for those that are (``read_only_key`` ...).
    feature_reasons: Mapping[Feature, str] = field(default_factory=dict)
    #: Who is told when the import is done (the onboarding page says so); not part of the HTTP view.
    contact_email: str | None = None
    sync: SyncSummary = NOT_SYNCING
    #: Chargebee: the site (a reconnect must name it again); not part of the HTTP view.
    site: str | None = None


async def read_connection(deps: Dependencies, account_id: str) -> ConnectionSummary:
    connection = await deps.connections.latest(account_id)
    if connection is None:
        raise no_connection()
    return ConnectionSummary(
        status=connection.status,
        processor=connection.processor,
        mode=connection.mode,
        connected_at=connection.connected_at,
        features=features_of(connection.status, write_access=connection.write_access),
        feature_reasons=feature_reasons(connection),
        latest_import=connection.latest_import,
        contact_email=connection.contact_email,
        site=connection.site,
        sync=await _sync_of(deps, connection.connection_id, connection.status),
    )


async def _sync_of(deps: Dependencies, connection_id: str, status: ConnectionStatus) -> SyncSummary:
    if deps.sync_states is None:
        return NOT_SYNCING
    state = await deps.sync_states.of(connection_id)
    if state is None:
        return NOT_SYNCING
    shown, lag = sync_view(state, deps.clock())
    if status is not ConnectionStatus.CONNECTED:
        shown = SyncStatus.STOPPED
    return SyncSummary(status=shown, last_event_at=state.last_event_at, lag_s=lag)

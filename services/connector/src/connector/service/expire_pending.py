"""Use case: a Stripe connection left ``awaiting_authorization`` (the key given, OAuth never finished)
expires after ``pending_authorization_ttl``: its encrypted key is destroyed and it ends as a
disconnection does (its OAuth states dropped, so a late callback answers ``invalid_state``;
``ProcessorDisconnected``). Run by the connector's periodic runner; each expiry is one conditional
write, so of several replicas one ends each connection, and an authorization landing first wins.

A pending Stripe reconnect (the new key a ``needs_reconnect`` connection keeps until the OAuth
callback) expires after the same time: only that key is destroyed (and the reconnect's OAuth states
dropped); the connection stays ``needs_reconnect`` with its history, and nothing is published. The
write is conditional on the same key, so a reconnect begun again meanwhile keeps its own.
"""

from __future__ import annotations

from typing import Final

from contracts.connections import ConnectionStatus
from contracts.events import ProcessorDisconnected
from contracts.runtime.logging import get_logger
from contracts.topics import CONNECTIONS

from connector.domain.ports import Outgoing
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver

EXPIRY_BATCH_SIZE: Final = 100
_log = get_logger(__name__)


async def expire_pending_authorizations(deps: Dependencies, *, limit: int = EXPIRY_BATCH_SIZE) -> int:
    """End the pending authorizations older than the TTL; how many this call ended."""
    now = deps.clock()
    expired = 0
    for pending in await deps.connections.awaiting_authorization_since(
        now - deps.pending_authorization_ttl, limit=limit
    ):
        outgoing = [
            Outgoing(
                CONNECTIONS,
                ProcessorDisconnected(account_id=pending.account_id, connection_id=pending.connection_id),
            )
        ]
        if not await deps.connections.disconnect(
            pending.connection_id,
            from_status=ConnectionStatus.AWAITING_AUTHORIZATION,
            at=now,
            events=outgoing,
        ):
            continue  # authorized, replaced or disconnected meanwhile
        await deps.oauth_states.discard_for(pending.connection_id)
        await deliver(deps, pending.connection_id, outgoing)
        expired += 1
        _log.info(
            "pending_authorization.expired",
            account_id=pending.account_id,
            connection_id=pending.connection_id,
            created_at=pending.created_at.isoformat(),
        )
    return expired + await expire_pending_reconnects(deps, limit=limit)


async def expire_pending_reconnects(deps: Dependencies, *, limit: int = EXPIRY_BATCH_SIZE) -> int:
    """Destroy the new keys of Stripe reconnects pending longer than the TTL; how many."""
    now = deps.clock()
    expired = 0
    for connection in await deps.connections.pending_reconnects_since(
        now - deps.pending_authorization_ttl, limit=limit
    ):
        pending = connection.pending_reconnect
        if pending is None or not await deps.connections.drop_pending_reconnect(
            connection.connection_id, ciphertext=pending.credentials_ciphertext
        ):
            continue  # used, dropped or begun again meanwhile
        await deps.oauth_states.discard_for(connection.connection_id)
        expired += 1
        _log.info(
            "pending_reconnect.expired",
            account_id=connection.account_id,
            connection_id=connection.connection_id,
            requested_at=pending.requested_at.isoformat(),
        )
    return expired

"""Use case: a Stripe connection left ``awaiting_authorization`` (the key given, OAuth never finished)
expires after ``pending_authorization_ttl``: its encrypted key is destroyed and it ends as a
disconnection does (its OAuth states dropped, so a late callback answers ``invalid_state``;
``ProcessorDisconnected``). Run by the connector's periodic runner; each expiry is one conditional
write, so of several replicas one ends each connection, and an authorization landing first wins.
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
    return expired

"""Opening an account's new connection in place of a pending or skipped one, never of a connected one
(nor of one that needs reconnecting: that one is reconnected in place, see ``service.reconnect``)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.connections import ConnectionStatus

from connector.domain.connection import Connection
from connector.domain.ports import AccountBusy, Outgoing
from connector.domain.refusals import already_connected
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver


async def refuse_if_connected(deps: Dependencies, account_id: str) -> Connection | None:
    """Checked before any outbound call, so a connected account costs the processor nothing."""
    current = await deps.connections.active(account_id)
    if current is not None and current.status is ConnectionStatus.CONNECTED:
        raise already_connected()
    return current


async def open_connection(deps: Dependencies, connection: Connection, events: Sequence[Outgoing]) -> None:
    """Store ``connection`` as the account's current one and announce it.

    A pending Stripe connection or a skip is replaced: the person changed their mind. The store's
    uniqueness rule decides races: of two concurrent connects exactly one is stored, the other is
    refused with ``already_connected``.
    """
    current = await refuse_if_connected(deps, connection.account_id)
    if current is not None and current.status is ConnectionStatus.NEEDS_RECONNECT:
        # Its history is kept until the account reconnects or disconnects, never replaced silently.
        raise already_connected()
    if current is not None:
        await deps.connections.disconnect(current.connection_id, from_status=current.status, at=deps.clock())
        await deps.oauth_states.discard_for(current.connection_id)
    try:
        await deps.connections.open(connection, events)
    except AccountBusy:
        raise already_connected() from None
    await deliver(deps, connection.connection_id, events)

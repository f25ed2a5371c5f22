"""Use case: the account disconnects its processor; its stored credentials are destroyed and a
Stripe OAuth grant is revoked. With ``erase``, the importer also erases the account's stored
processor data (``ProcessorDisconnected.erase``), also when the account had disconnected before,
and the connector deletes its own: the account's offers (the processor's subscription and customer
ids, MRR and amounts), once the connection is no longer connected, so no new offer is applied."""

from __future__ import annotations

from typing import Final

from contracts.connections import ConnectionStatus
from contracts.events import Processor, ProcessorDisconnected
from contracts.runtime.logging import get_logger
from contracts.topics import CONNECTIONS

from connector.domain.ports import Outgoing
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver
from connector.service.revoke_grants import revoke_grant

_log = get_logger(__name__)

#: A connection can change state between reading and writing it (an OAuth callback landing).
DISCONNECT_ATTEMPTS: Final = 3
#: Statuses in which a Stripe connection may still hold an OAuth grant to our platform.
_GRANTED: Final = frozenset({ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECT})


def no_connection() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.CONNECTION_NOT_FOUND,
        "This account has not connected a payment processor or skipped the step yet.",
    )


async def disconnect(deps: Dependencies, account_id: str, *, erase: bool = False) -> None:
    """Idempotent: disconnecting an already disconnected account changes nothing, except that an
    erase asked for then is announced again (the importer's erase is idempotent: a finished one
    only repeats its ``AccountDataErased``)."""
    for _ in range(DISCONNECT_ATTEMPTS):
        current = await deps.connections.active(account_id)
        if current is None:
            latest = await deps.connections.latest(account_id)
            if latest is None:
                raise no_connection()
            if erase:
                await _erase_disconnected(deps, account_id, latest.connection_id)
            return
        outgoing = [
            Outgoing(
                CONNECTIONS,
                ProcessorDisconnected(
                    account_id=account_id, connection_id=current.connection_id, erase=erase
                ),
            )
        ]
        # A connected Stripe account granted our platform access by OAuth: revoke it too (also after
        # a lost key, where the grant may outlive it; revoking one already removed is done at once).
        grant = (
            current.processor_account_id
            if current.processor is Processor.STRIPE and current.status in _GRANTED
            else None
        )
        if await deps.connections.disconnect(
            current.connection_id,
            from_status=current.status,
            at=deps.clock(),
            events=outgoing,
            revoke_grant_of=grant,
        ):
            await deps.oauth_states.discard_for(current.connection_id)
            await deliver(deps, current.connection_id, outgoing)
            if grant is not None:
                await revoke_grant(deps, current.connection_id, grant)
            if erase:
                await _erase_offers(deps, account_id)
            return
    raise RuntimeError(f"the connection of {account_id} kept changing while disconnecting it")


async def _erase_disconnected(deps: Dependencies, account_id: str, connection_id: str) -> None:
    """An account disconnected earlier (history kept) now asks for its data to be erased."""
    outgoing = [
        Outgoing(
            CONNECTIONS,
            ProcessorDisconnected(account_id=account_id, connection_id=connection_id, erase=True),
        )
    ]
    await deps.connections.add_events(connection_id, outgoing)
    await deliver(deps, connection_id, outgoing)
    await _erase_offers(deps, account_id)


async def _erase_offers(deps: Dependencies, account_id: str) -> None:
    """The connector's own copy of the account's processor data. Done before the answer: a failure
    here answers 5xx and the client's repeat (an erase of a disconnected account) does it again."""
    if deps.offers is None:
        return
    erased = await deps.offers.erase_account(account_id)
    _log.info("connection.offers_erased", account_id=account_id, offers=erased)

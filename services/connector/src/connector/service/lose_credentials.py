"""Use case: the processor no longer accepts a connection's stored credentials (SPEC "Connection
lifecycle", lost credentials); the connection becomes ``needs_reconnect`` and ``ConnectionLost`` says so.

Reported by Stripe's ``account.application.deauthorized`` webhook, by an import that failed with
``credentials_rejected`` and by the importer's sync (``CredentialsLost``); the same loss often
arrives from several of them, and each may arrive twice. Only a ``connected`` connection moves, in
one conditional write that also queues ``ConnectionLost`` in its outbox: every later report finds it
moved and changes and publishes nothing. A crash after the write loses nothing (the outbox relay
publishes the event). What the connector does for a connection stops with the status: offers and
import requests need ``connected``, Chargebee webhooks of it are no longer queued; the importer
stops its sync and imports when it reads ``ConnectionLost``.
"""

from __future__ import annotations

from contracts.connections import ConnectionStatus
from contracts.events import ConnectionLost
from contracts.runtime.logging import get_logger
from contracts.topics import CONNECTIONS

from connector.domain.connection import LossReason, is_stale_report
from connector.domain.ports import Outgoing
from connector.service.dependencies import Dependencies
from connector.service.metrics import CONNECTIONS_LOST
from connector.service.outbox import deliver

_log = get_logger(__name__)


async def lose_credentials(
    deps: Dependencies,
    connection_id: str,
    reason: LossReason,
    *,
    account_id: str | None = None,
    credentials_version: int | None = None,
) -> bool:
    """Move the connection to ``needs_reconnect``; ``True`` only for the report that moved it.

    ``account_id``, when the report names one, must be the connection's (else nothing changes).
    ``credentials_version``, when the report names one, is the version of the credentials the
    processor refused: a report about credentials a reconnect has replaced since (an importer
    replica still holding the old ones for its short cache time) changes nothing.
    """
    current = await deps.connections.get(connection_id)
    if (
        current is None
        or current.status is not ConnectionStatus.CONNECTED
        or current.processor is None
        or (account_id is not None and current.account_id != account_id)
        or is_stale_report(current, credentials_version)
    ):
        _log.info(
            "connection.loss_ignored",
            connection_id=connection_id,
            reason=reason,
            status=None if current is None else current.status.value,
            credentials_version=credentials_version,
        )
        return False
    outgoing = [
        Outgoing(
            CONNECTIONS,
            ConnectionLost(
                account_id=current.account_id,
                connection_id=connection_id,
                processor=current.processor,
                reason=reason,
                contact_email=current.contact_email,
            ),
        )
    ]
    lost = await deps.connections.lose_credentials(
        connection_id,
        reason=reason,
        at=deps.clock(),
        events=outgoing,
        credentials_version=credentials_version,
    )
    if lost is None:
        return False  # another report of the same loss moved it first, or a reconnect replaced them
    await deliver(deps, connection_id, outgoing)
    CONNECTIONS_LOST.labels(processor=current.processor.value, reason=reason).inc()
    _log.warning(
        "connection.credentials_lost",
        connection_id=connection_id,
        account_id=current.account_id,
        processor=current.processor.value,
        reason=reason,
    )
    return True

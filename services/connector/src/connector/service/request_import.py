"""Use case: import a connected account's billing history again (the re-sync)."""

from __future__ import annotations

from contracts.connections import ConnectionStatus
from contracts.events import ImportRequested
from contracts.topics import CONNECTIONS

from connector.domain.connection import ImportStatus, LatestImport, new_import_id
from connector.domain.ports import Outgoing
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.context import Services
from connector.service.disconnect import no_connection
from connector.service.outbox import deliver


def not_connected() -> ConnectionRefused:
    return ConnectionRefused(
        RefusalCode.NOT_CONNECTED,
        "This account has no connected payment processor to import from. Connect Stripe or Chargebee first.",
    )


async def request_import(services: Services, account_id: str) -> str:
    """The new import's id; the importer starts it when it reads ``ImportRequested``."""
    current = await services.connections.active(account_id)
    if current is None and await services.connections.latest(account_id) is None:
        raise no_connection()
    if (
        current is None
        or current.status is not ConnectionStatus.CONNECTED
        or current.processor is None
        or current.mode is None
        or current.processor_account_id is None
    ):
        raise not_connected()
    now = services.clock()
    import_id = new_import_id()
    outgoing = [
        Outgoing(
            CONNECTIONS,
            ImportRequested(
                account_id=account_id,
                connection_id=current.connection_id,
                processor=current.processor,
                mode=current.mode,
                processor_account_id=current.processor_account_id,
                contact_email=current.contact_email or "",
                import_id=import_id,
            ),
        )
    ]
    latest = LatestImport(import_id=import_id, status=ImportStatus.QUEUED, requested_at=now)
    if not await services.connections.request_import(current.connection_id, latest, outgoing):
        raise not_connected()
    await deliver(services, current.connection_id, outgoing)
    return import_id

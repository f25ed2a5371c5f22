"""Use case: check a Chargebee site and key, store them encrypted and start the first import."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from contracts.connections import ConnectionStatus, ProcessorCredentials
from contracts.events import Mode, Processor, ProcessorConnected
from contracts.topics import CONNECTIONS
from pydantic import SecretStr

from connector.domain.chargebee_webhook import WebhookCredentials, new_webhook_credentials
from connector.domain.connection import (
    Connection,
    ImportStatus,
    LatestImport,
    new_connection_id,
    new_import_id,
)
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite
from connector.domain.ports import Outgoing
from connector.domain.reconnect import reconnect_target
from connector.domain.webhooks import CHARGEBEE_WEBHOOK_PATH
from connector.service.dependencies import Dependencies
from connector.service.opening import open_connection, refuse_if_connected
from connector.service.reconnect import Reconnected, reconnect_chargebee


@dataclass(frozen=True, slots=True)
class ChargebeeCredentialsSubmission:
    account_id: str
    site: str
    api_key: SecretStr
    contact_email: str
    request_event_id: UUID | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChargebeeConnected:
    connection_id: str
    mode: Mode
    import_id: str
    #: Shown once: only a hash of the password is stored.
    webhook: WebhookCredentials


async def connect_chargebee(
    deps: Dependencies, submission: ChargebeeCredentialsSubmission
) -> ChargebeeConnected | Reconnected:
    """A first connection (with its webhook credentials, shown once), or, on an account whose
    connection is ``needs_reconnect``, that connection reconnected in place (same site only)."""
    # Both are checked before anything leaves the service: the site name becomes part of a host name.
    site = ChargebeeSite.parse(submission.site)
    key = ChargebeeApiKey.parse(submission.api_key.get_secret_value())
    lost = reconnect_target(await refuse_if_connected(deps, submission.account_id), Processor.CHARGEBEE)
    if lost is not None:
        return await reconnect_chargebee(
            deps,
            lost,
            site,
            key,
            contact_email=submission.contact_email,
            request_event_id=submission.request_event_id,
        )

    await deps.chargebee.check_access(site, key)
    catalog = await deps.chargebee.product_catalog(site, key)
    write_refusal = await deps.chargebee.write_refusal(site, key, catalog)

    now = deps.clock()
    connection_id = submission.connection_id or new_connection_id()
    import_id = new_import_id()
    webhook = new_webhook_credentials(connection_id)
    connection = Connection(
        connection_id=connection_id,
        account_id=submission.account_id,
        processor=Processor.CHARGEBEE,
        status=ConnectionStatus.CONNECTED,
        mode=site.mode,
        processor_account_id=site.name,
        site=site.name,
        product_catalog=catalog,
        write_access=write_refusal is None,
        write_access_reason=write_refusal,
        contact_email=submission.contact_email,
        credentials_ciphertext=deps.cipher.encrypt(ProcessorCredentials(api_key=key.secret)),
        created_at=now,
        connected_at=now,
        request_event_id=submission.request_event_id,
        latest_import=LatestImport(import_id=import_id, status=ImportStatus.QUEUED, requested_at=now),
        webhook_username=webhook.username,
        webhook_password_sha256=webhook.password_sha256,
    )
    connected = ProcessorConnected(
        account_id=submission.account_id,
        connection_id=connection_id,
        processor=Processor.CHARGEBEE,
        mode=site.mode,
        processor_account_id=site.name,
        contact_email=submission.contact_email,
        import_id=import_id,
    )
    await open_connection(deps, connection, [Outgoing(CONNECTIONS, connected)])
    return ChargebeeConnected(connection_id, site.mode, import_id, webhook)


def webhook_url(deps: Dependencies, connection_id: str) -> str:
    """Where the connection's Chargebee webhooks go: the public URL when the intake is configured,
    else the path alone."""
    if deps.webhooks is not None:
        return deps.webhooks.chargebee_url(connection_id)
    return CHARGEBEE_WEBHOOK_PATH.format(connection_id=connection_id)

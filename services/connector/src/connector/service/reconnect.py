"""Use cases: reconnect a ``needs_reconnect`` connection in place (SPEC "Connection lifecycle").

The connection keeps its id, its history and its Chargebee webhook credentials; only the processor
credentials change. What can fail, and what then happens:

- New credentials of another processor account (or another processor): 409
  ``different_processor_account`` before anything is stored; the connection stays as it was.
- Stripe: the key is kept, encrypted, beside the lost credentials until the OAuth callback; a
  denial or a failure there drops it and leaves the connection ``needs_reconnect``.
- The write that puts the new credentials in place also queues ``ProcessorReconnected`` (the outbox):
  a crash after it delays the event, never loses it; a crash before it changed nothing. An onboarding
  request (Kafka intake) is recorded on the connection in that same write, so its redelivery is
  answered as already handled.
- Whether sync resumes or a full import is needed is decided here, from the importer's
  ``sync_state``, so that the import's id is known to ``GET …/connection`` at once and travels in
  ``ProcessorReconnected.import_id`` (as ``ProcessorConnected.import_id`` does for a first connect).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from contracts.connections import ConnectionStatus, ProcessorCredentials
from contracts.events import Mode, ProcessorReconnected, StripeAuthorizationRequired
from contracts.topics import CONNECTIONS
from pydantic import SecretStr

from connector.domain.connection import (
    Connection,
    ImportStatus,
    LatestImport,
    PendingReconnect,
    Reconnection,
    new_import_id,
)
from connector.domain.credentials import ChargebeeApiKey, ChargebeeSite, StripeApiKey
from connector.domain.oauth import issue_state
from connector.domain.ports import Outgoing
from connector.domain.reconnect import needs_full_import, require_same_account
from connector.domain.refusals import ConnectionRefused, RefusalCode, already_connected
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver


@dataclass(frozen=True, slots=True)
class Reconnected:
    connection_id: str
    mode: Mode
    #: The full import the reconnect started; ``None`` when sync resumes from where it stopped.
    import_id: str | None


async def plan_resume(deps: Dependencies, connection: Connection) -> LatestImport | None:
    """The full import a reconnect needs, or ``None`` when sync can resume from its cursor."""
    state = None if deps.sync_states is None else await deps.sync_states.of(connection.connection_id)
    now = deps.clock()
    if not needs_full_import(state, now):
        return None
    return LatestImport(import_id=new_import_id(), status=ImportStatus.QUEUED, requested_at=now)


def reconnected_event(connection: Connection, reconnection: Reconnection) -> ProcessorReconnected:
    assert connection.processor is not None
    assert connection.processor_account_id is not None
    mode = reconnection.mode or connection.mode
    assert mode is not None
    latest = reconnection.latest_import
    return ProcessorReconnected(
        account_id=connection.account_id,
        connection_id=connection.connection_id,
        processor=connection.processor,
        mode=mode,
        processor_account_id=connection.processor_account_id,
        import_id=None if latest is None else latest.import_id,
    )


async def put_in_place(deps: Dependencies, connection: Connection, reconnection: Reconnection) -> Connection:
    """Write the new credentials over the lost ones and announce it; refused if the connection
    changed meanwhile (reconnected by a concurrent request, or disconnected)."""
    outgoing = [Outgoing(CONNECTIONS, reconnected_event(connection, reconnection))]
    updated = await deps.connections.reconnect(connection.connection_id, reconnection, outgoing)
    if updated is None:
        raise await _changed_meanwhile(deps, connection)
    await deliver(deps, connection.connection_id, outgoing)
    return updated


async def reconnect_chargebee(
    deps: Dependencies,
    connection: Connection,
    site: ChargebeeSite,
    key: ChargebeeApiKey,
    *,
    contact_email: str,
    request_event_id: UUID | None = None,
) -> Reconnected:
    """The same site with a new key: connected again at once.

    The webhook's Basic credentials are kept: the site's admin entered them in Chargebee (which has
    no API for webhooks), and they were never what stopped working.
    """
    require_same_account(connection, site.name)
    await deps.chargebee.check_access(site, key)
    catalog = await deps.chargebee.product_catalog(site, key)
    write_refusal = await deps.chargebee.write_refusal(site, key, catalog)
    latest = await plan_resume(deps, connection)
    reconnection = Reconnection(
        credentials_ciphertext=deps.cipher.encrypt(ProcessorCredentials(api_key=key.secret)),
        at=deps.clock(),
        write_access=write_refusal is None,
        write_access_reason=write_refusal,
        mode=site.mode,
        contact_email=contact_email,
        product_catalog=catalog,
        latest_import=latest,
        request_event_id=request_event_id,
    )
    await put_in_place(deps, connection, reconnection)
    return Reconnected(connection.connection_id, site.mode, None if latest is None else latest.import_id)


async def begin_stripe_reconnect(
    deps: Dependencies,
    connection: Connection,
    key: StripeApiKey,
    stripe_account_id: str,
    *,
    contact_email: str,
    return_url: str | None,
    request_event_id: UUID | None = None,
) -> str:
    """Keep the new key until the person authorizes our platform again; the authorize URL."""
    require_same_account(connection, stripe_account_id)
    if connection.mode is not None and key.mode is not connection.mode:
        # The same account's test and live data are two histories: one never continues the other.
        raise ConnectionRefused(
            RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT,
            f"This connection was made with a {connection.mode.value} key. Reconnect it with a "
            f"{connection.mode.value} key of the same Stripe account, or disconnect first.",
        )
    now = deps.clock()
    platform = deps.stripe_platform
    issued = issue_state(connection.connection_id, connection.account_id, now, platform.state_ttl)
    pending = PendingReconnect(
        credentials_ciphertext=deps.cipher.encrypt(ProcessorCredentials(api_key=key.secret)),
        mode=key.mode,
        contact_email=contact_email,
        return_url=return_url,
        request_event_id=request_event_id,
        requested_at=now,
    )
    authorize_url = platform.authorize_url(issued.state)
    outgoing = [
        Outgoing(
            CONNECTIONS,
            StripeAuthorizationRequired(
                account_id=connection.account_id,
                connection_id=connection.connection_id,
                authorize_url=authorize_url,
            ),
        )
    ]
    await deps.oauth_states.save(issued.grant)
    if not await deps.connections.begin_reconnect(connection.connection_id, pending, outgoing):
        raise await _changed_meanwhile(deps, connection)
    await deliver(deps, connection.connection_id, outgoing)
    return authorize_url


def reconnected_credentials(
    deps: Dependencies, pending: PendingReconnect, access_token: str | None, refresh_token: str | None
) -> ProcessorCredentials:
    return ProcessorCredentials(
        api_key=deps.cipher.decrypt(pending.credentials_ciphertext).api_key,
        oauth_access_token=None if access_token is None else SecretStr(access_token),
        oauth_refresh_token=None if refresh_token is None else SecretStr(refresh_token),
    )


async def _changed_meanwhile(deps: Dependencies, connection: Connection) -> ConnectionRefused:
    now = await deps.connections.get(connection.connection_id)
    if now is not None and now.status is ConnectionStatus.CONNECTED:
        return already_connected()
    return ConnectionRefused(
        RefusalCode.CONNECTION_NOT_FOUND,
        "This account's connection changed while reconnecting it. Please look at it again and retry.",
    )

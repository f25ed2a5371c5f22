"""Use case: Stripe sends the browser back; finish the connection or say why it did not work.

For a ``needs_reconnect`` connection with a reconnect pending, the authorization must be of the
connection's own Stripe account (``different_processor_account`` otherwise, and that other grant is
revoked); success puts the new credentials in place of the lost ones (``service.reconnect``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from contracts.connections import ConnectionStatus, ProcessorCredentials
from contracts.events import Processor, ProcessorConnected
from contracts.topics import CONNECTIONS
from pydantic import SecretStr

from connector.domain.connection import (
    READ_ONLY_GRANT,
    Connection,
    ImportStatus,
    LatestImport,
    PendingReconnect,
    Reconnection,
    new_import_id,
)
from connector.domain.oauth import OAUTH_SCOPE, state_digest
from connector.domain.ports import Outgoing
from connector.domain.refusals import (
    ConnectionRefused,
    RefusalCode,
    different_processor_account,
    invalid_state,
    rejection_of,
)
from connector.service.dependencies import Dependencies
from connector.service.outbox import deliver
from connector.service.reconnect import plan_resume, put_in_place, reconnected_credentials
from connector.service.revoke_grants import revoke_grant

#: What Stripe puts in ``error`` when the person clicks "deny".
STRIPE_ACCESS_DENIED: Final = "access_denied"


class AuthorizationResult(StrEnum):
    CONNECTED = "connected"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class StripeCallback:
    state: str | None
    code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationOutcome:
    result: AuthorizationResult
    account_id: str
    connection_id: str
    return_url: str | None
    code: RefusalCode | None = None
    message: str | None = None
    import_id: str | None = None


async def complete_stripe_authorization(deps: Dependencies, callback: StripeCallback) -> AuthorizationOutcome:
    """Raises ``invalid_state`` (and changes nothing) unless the state is unused, unexpired and its
    connection still pending; every other failure ends the pending connection and is reported
    through the outcome, for the browser's return URL."""
    if not callback.state:
        raise invalid_state()
    grant = await deps.oauth_states.consume(state_digest(callback.state), deps.clock())
    if grant is None:
        raise invalid_state()
    pending = await deps.connections.get(grant.connection_id)
    if (
        pending is not None
        and pending.account_id == grant.account_id
        and pending.status is ConnectionStatus.NEEDS_RECONNECT
        and pending.pending_reconnect is not None
    ):
        return await _complete_reconnect(deps, pending, pending.pending_reconnect, callback)
    if (
        pending is None
        or pending.account_id != grant.account_id
        or pending.status is not ConnectionStatus.AWAITING_AUTHORIZATION
        or pending.credentials_ciphertext is None
    ):
        raise invalid_state()

    if callback.error is not None or not callback.code:
        denied = callback.error == STRIPE_ACCESS_DENIED
        refusal = ConnectionRefused(
            RefusalCode.AUTHORIZATION_DENIED if denied else RefusalCode.AUTHORIZATION_FAILED,
            "You did not allow access on Stripe, so nothing was connected. You can start again or "
            "skip this step."
            if denied
            else "Stripe did not complete the authorization. Please start the connection again.",
        )
        return await _abandon(deps, pending, refusal, denied=denied)

    try:
        authorization = await deps.stripe.exchange_code(callback.code)
    except ConnectionRefused as refusal:
        return await _abandon(deps, pending, refusal)
    if authorization.stripe_user_id != pending.processor_account_id:
        # The other account did grant our platform access: that grant is revoked, not kept.
        return await _abandon(
            deps,
            pending,
            ConnectionRefused(
                RefusalCode.ACCOUNT_MISMATCH,
                "You authorized a different Stripe account than the one the API key belongs to. "
                "Sign in to the key's account on Stripe and start again.",
            ),
            revoke_grant_of=authorization.stripe_user_id,
        )

    key = deps.cipher.decrypt(pending.credentials_ciphertext).api_key
    credentials = ProcessorCredentials(
        api_key=key,
        oauth_access_token=_secret(authorization.access_token),
        oauth_refresh_token=_secret(authorization.refresh_token),
    )
    now = deps.clock()
    import_id = new_import_id()
    connected = ProcessorConnected(
        account_id=pending.account_id,
        connection_id=pending.connection_id,
        processor=Processor.STRIPE,
        mode=pending.mode,
        processor_account_id=authorization.stripe_user_id,
        contact_email=pending.contact_email or "",
        import_id=import_id,
    )
    outgoing = [Outgoing(CONNECTIONS, connected)]
    updated = await deps.connections.authorize(
        pending.connection_id,
        credentials_ciphertext=deps.cipher.encrypt(credentials),
        connected_at=now,
        latest_import=LatestImport(import_id=import_id, status=ImportStatus.QUEUED, requested_at=now),
        events=outgoing,
        # The grant's scope says whether we may write, without writing anything to find out.
        write_access=authorization.scope == OAUTH_SCOPE,
        write_access_reason=None if authorization.scope == OAUTH_SCOPE else READ_ONLY_GRANT,
    )
    if updated is None:
        # Disconnected or replaced while the person was on Stripe: the grant just made is not used.
        await deps.connections.revoke_grant_later(pending.connection_id, authorization.stripe_user_id)
        await revoke_grant(deps, pending.connection_id, authorization.stripe_user_id)
        raise invalid_state()
    await deliver(deps, pending.connection_id, outgoing)
    return AuthorizationOutcome(
        AuthorizationResult.CONNECTED,
        pending.account_id,
        pending.connection_id,
        pending.return_url,
        import_id=import_id,
    )


async def _complete_reconnect(
    deps: Dependencies, connection: Connection, pending: PendingReconnect, callback: StripeCallback
) -> AuthorizationOutcome:
    """The person authorized (or not) again for a ``needs_reconnect`` connection. Whatever fails
    drops the new key and leaves the connection as it was: ``needs_reconnect``, history kept."""
    if callback.error is not None or not callback.code:
        denied = callback.error == STRIPE_ACCESS_DENIED
        refusal = ConnectionRefused(
            RefusalCode.AUTHORIZATION_DENIED if denied else RefusalCode.AUTHORIZATION_FAILED,
            "You did not allow access on Stripe, so the connection still needs reconnecting. Its "
            "history is kept; you can reconnect at any time."
            if denied
            else "Stripe did not complete the authorization. Please reconnect again.",
        )
        return await _keep_lost(deps, connection, pending, refusal, denied=denied)
    try:
        authorization = await deps.stripe.exchange_code(callback.code)
    except ConnectionRefused as refusal:
        return await _keep_lost(deps, connection, pending, refusal)
    if authorization.stripe_user_id != connection.processor_account_id:
        return await _keep_lost(
            deps,
            connection,
            pending,
            different_processor_account("Stripe"),
            revoke_grant_of=authorization.stripe_user_id,
        )
    credentials = reconnected_credentials(
        deps, pending, authorization.access_token, authorization.refresh_token
    )
    latest = await plan_resume(deps, connection)
    reconnection = Reconnection(
        credentials_ciphertext=deps.cipher.encrypt(credentials),
        at=deps.clock(),
        write_access=authorization.scope == OAUTH_SCOPE,
        write_access_reason=None if authorization.scope == OAUTH_SCOPE else READ_ONLY_GRANT,
        mode=pending.mode,
        contact_email=pending.contact_email,
        latest_import=latest,
        request_event_id=pending.request_event_id,
    )
    try:
        await put_in_place(deps, connection, reconnection)
    except ConnectionRefused:
        # Disconnected (or reconnected) meanwhile: the grant just made is not used.
        await deps.connections.revoke_grant_later(connection.connection_id, authorization.stripe_user_id)
        await revoke_grant(deps, connection.connection_id, authorization.stripe_user_id)
        raise invalid_state() from None
    return AuthorizationOutcome(
        AuthorizationResult.CONNECTED,
        connection.account_id,
        connection.connection_id,
        pending.return_url,
        import_id=None if latest is None else latest.import_id,
    )


async def _keep_lost(
    deps: Dependencies,
    connection: Connection,
    pending: PendingReconnect,
    refusal: ConnectionRefused,
    *,
    denied: bool = False,
    revoke_grant_of: str | None = None,
) -> AuthorizationOutcome:
    outgoing = _rejection(connection.account_id, pending.request_event_id, refusal)
    if revoke_grant_of is not None:
        await deps.connections.revoke_grant_later(connection.connection_id, revoke_grant_of)
    if await deps.connections.drop_pending_reconnect(connection.connection_id, outgoing):
        await deliver(deps, connection.connection_id, outgoing)
    if revoke_grant_of is not None:
        await revoke_grant(deps, connection.connection_id, revoke_grant_of)
    return _refused(connection, pending.return_url, refusal, denied=denied)


async def _abandon(
    deps: Dependencies,
    pending: Connection,
    refusal: ConnectionRefused,
    *,
    denied: bool = False,
    revoke_grant_of: str | None = None,
) -> AuthorizationOutcome:
    """End the pending connection and destroy its key; the gateway hears of it if it asked."""
    outgoing = _rejection(pending.account_id, pending.request_event_id, refusal)
    if await deps.connections.disconnect(
        pending.connection_id,
        from_status=ConnectionStatus.AWAITING_AUTHORIZATION,
        at=deps.clock(),
        events=outgoing,
        revoke_grant_of=revoke_grant_of,
    ):
        await deliver(deps, pending.connection_id, outgoing)
        if revoke_grant_of is not None:
            await revoke_grant(deps, pending.connection_id, revoke_grant_of)
    return _refused(pending, pending.return_url, refusal, denied=denied)


def _rejection(account_id: str, request_event_id: UUID | None, refusal: ConnectionRefused) -> list[Outgoing]:
    """The gateway's answer to its onboarding request, when the connection came from one."""
    if request_event_id is None:
        return []
    return [Outgoing(CONNECTIONS, rejection_of(account_id, request_event_id, refusal))]


def _refused(
    connection: Connection, return_url: str | None, refusal: ConnectionRefused, *, denied: bool
) -> AuthorizationOutcome:
    return AuthorizationOutcome(
        AuthorizationResult.DENIED if denied else AuthorizationResult.ERROR,
        connection.account_id,
        connection.connection_id,
        return_url,
        code=refusal.code,
        message=refusal.message,
    )


def _secret(value: str | None) -> SecretStr | None:
    return None if value is None else SecretStr(value)

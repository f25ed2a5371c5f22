"""Use case: check a pasted Stripe key and send the person to Stripe to authorize our platform.

On an account whose connection is ``needs_reconnect`` the same request reconnects it
(``service.reconnect``): the key must be of the same Stripe account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from contracts.connections import ConnectionStatus, ProcessorCredentials
from contracts.events import Mode, Processor, StripeAuthorizationRequired
from contracts.topics import CONNECTIONS
from pydantic import SecretStr

from connector.domain.connection import Connection, new_connection_id
from connector.domain.credentials import StripeApiKey
from connector.domain.oauth import issue_state
from connector.domain.ports import Outgoing
from connector.domain.reconnect import reconnect_target, require_same_account
from connector.domain.refusals import ConnectionRefused, RefusalCode
from connector.service.dependencies import Dependencies
from connector.service.opening import open_connection, refuse_if_connected
from connector.service.reconnect import begin_stripe_reconnect

#: What the importer lists: a restricted key must be allowed to read each of them.
IMPORTED_STRIPE_RESOURCES: Final = ("customers", "subscriptions", "invoices", "coupons", "prices")


@dataclass(frozen=True, slots=True)
class StripeKeySubmission:
    account_id: str
    api_key: SecretStr
    contact_email: str
    return_url: str | None = None
    #: Set when the request came from the onboarding gateway over Kafka.
    request_event_id: UUID | None = None
    connection_id: str | None = None


@dataclass(frozen=True, slots=True)
class AwaitingAuthorization:
    connection_id: str
    mode: Mode
    authorize_url: str


async def connect_stripe(deps: Dependencies, submission: StripeKeySubmission) -> AwaitingAuthorization:
    key = StripeApiKey.parse(submission.api_key.get_secret_value())
    if submission.return_url is not None:
        deps.return_urls.check(submission.return_url)
    platform = deps.stripe_platform
    if not platform.client_id:
        raise ConnectionRefused(
            RefusalCode.STRIPE_CONNECT_UNAVAILABLE,
            "Connecting Stripe is not available right now. Please try again later or skip this step.",
        )
    lost = reconnect_target(await refuse_if_connected(deps, submission.account_id), Processor.STRIPE)

    stripe_account_id = await deps.stripe.account_of(key)
    if lost is not None:
        # Before the permission checks: another account's key is refused for what it is.
        require_same_account(lost, stripe_account_id)
    if key.restricted:
        missing = await deps.stripe.unreadable_resources(key, IMPORTED_STRIPE_RESOURCES)
        if missing:
            raise ConnectionRefused(
                RefusalCode.INSUFFICIENT_PERMISSIONS,
                "This restricted key cannot read "
                + ", ".join(missing)
                + ". Give it read access to "
                + ", ".join(IMPORTED_STRIPE_RESOURCES)
                + " in Stripe Dashboard → Developers → API keys, then try again.",
                missing_permissions=missing,
            )

    if lost is not None:
        authorize_url = await begin_stripe_reconnect(
            deps,
            lost,
            key,
            stripe_account_id,
            contact_email=submission.contact_email,
            return_url=submission.return_url,
            request_event_id=submission.request_event_id,
        )
        return AwaitingAuthorization(lost.connection_id, key.mode, authorize_url)

    now = deps.clock()
    connection_id = submission.connection_id or new_connection_id()
    issued = issue_state(connection_id, submission.account_id, now, platform.state_ttl)
    connection = Connection(
        connection_id=connection_id,
        account_id=submission.account_id,
        processor=Processor.STRIPE,
        status=ConnectionStatus.AWAITING_AUTHORIZATION,
        mode=key.mode,
        processor_account_id=stripe_account_id,
        contact_email=submission.contact_email,
        credentials_ciphertext=deps.cipher.encrypt(ProcessorCredentials(api_key=key.secret)),
        created_at=now,
        return_url=submission.return_url,
        request_event_id=submission.request_event_id,
    )
    authorize_url = platform.authorize_url(issued.state)
    announcement = StripeAuthorizationRequired(
        account_id=submission.account_id, connection_id=connection_id, authorize_url=authorize_url
    )
    # The state is stored first so that no announced authorize URL lacks its state. If the account
    # turns out to be busy, the state stays behind unrevealed until its expiry removes it.
    await deps.oauth_states.save(issued.grant)
    await open_connection(deps, connection, [Outgoing(CONNECTIONS, announcement)])
    return AwaitingAuthorization(connection_id, key.mode, authorize_url)

"""Use case: answer the onboarding gateway's requests from Kafka with the same use cases as HTTP.

Secrets arrive sealed to our public key and are opened only here. Every request gets an answer on
``connections.v1``: what its use case announces, or ``ConnectionRejected``. A redelivered request
(its connection, named after the request, already exists) is answered by what was stored the
first time; its events still unpublished are sent by the outbox relay. A request that reconnects a
``needs_reconnect`` connection is recorded on that connection in the write that reconnects it.
"""

from __future__ import annotations

from uuid import UUID

from contracts.events import (
    ChargebeeCredentialsSubmitted,
    Event,
    SkipRequested,
    StripeKeySubmitted,
)
from contracts.topics import CONNECTIONS

from connector.domain.connection import connection_id_for_request
from connector.domain.refusals import ConnectionRefused, rejection_of
from connector.service.connect_chargebee import ChargebeeCredentialsSubmission, connect_chargebee
from connector.service.connect_stripe import StripeKeySubmission, connect_stripe
from connector.service.dependencies import Dependencies
from connector.service.skip_connection import SkipRequest, skip_connection

REPLAYED = "replayed"
IGNORED = "ignored"


async def handle_onboarding_request(deps: Dependencies, request: Event) -> str:
    """The outcome, for the log line: what was answered, or the refusal code."""
    connection_id = connection_id_for_request(request.event_id)
    if await _answered_before(deps, request, connection_id):
        return REPLAYED
    try:
        match request:
            case StripeKeySubmitted():
                await connect_stripe(
                    deps,
                    StripeKeySubmission(
                        account_id=request.account_id,
                        api_key=deps.sealed_secrets.open(request.api_key_sealed),
                        contact_email=request.contact_email,
                        return_url=request.return_url,
                        request_event_id=request.event_id,
                        connection_id=connection_id,
                    ),
                )
                return "awaiting_authorization"
            case ChargebeeCredentialsSubmitted():
                await connect_chargebee(
                    deps,
                    ChargebeeCredentialsSubmission(
                        account_id=request.account_id,
                        site=request.site,
                        api_key=deps.sealed_secrets.open(request.api_key_sealed),
                        contact_email=request.contact_email,
                        request_event_id=request.event_id,
                        connection_id=connection_id,
                    ),
                )
                return "connected"
            case SkipRequested():
                await skip_connection(
                    deps,
                    SkipRequest(
                        account_id=request.account_id,
                        contact_email=request.contact_email,
                        request_event_id=request.event_id,
                        connection_id=connection_id,
                    ),
                )
                return "skipped"
            case _:
                return IGNORED
    except ConnectionRefused as refusal:
        await reject_request(
            deps, account_id=request.account_id, request_event_id=request.event_id, refusal=refusal
        )
        return refusal.code.value


async def _answered_before(deps: Dependencies, request: Event, connection_id: str) -> bool:
    if await deps.connections.get(connection_id) is not None:
        return True
    # A reconnect keeps its connection's id, so the request is found recorded on that connection.
    return await deps.connections.reconnected_by(request.event_id) is not None


async def reject_request(
    deps: Dependencies, *, account_id: str, request_event_id: UUID, refusal: ConnectionRefused
) -> None:
    """Tell the gateway why; the id is derived from the request so a redelivery is refused once."""
    await deps.events.publish(CONNECTIONS, rejection_of(account_id, request_event_id, refusal))

"""Use cases: take a processor webhook in, verify it, and queue it for the importer.

Nothing is applied here: a verified event is published on the internal sync topic and the request
answers at once, so a slow processor or store never holds a webhook (Stripe retries slow answers).
What can fail: a bad signature or wrong credentials (refused, nothing queued); the broker not
taking the event (the request fails with 503 and the processor delivers it again later). An event
of an account we do not know, or of a type we do not apply, is queued anyway and ignored by the
importer: the connector does not read the store to find out. The one exception is Stripe's rare
``account.application.deauthorized``: it is the connector's own business (the connection loses its
credentials, :mod:`connector.service.lose_credentials`), done here in one conditional write and not
queued; a store that cannot take it fails the request (503) and Stripe delivers it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from contracts.connections import ConnectionStatus
from contracts.sync import STRIPE_DEAUTHORIZED, ProcessorEventReceived

from connector.domain.chargebee_webhook import MalformedWebhook, chargebee_event, credentials_match
from connector.domain.connection import DEAUTHORIZED, before_reconnect
from connector.domain.stripe_events import MalformedStripeEvent, stripe_event
from connector.domain.stripe_signature import InvalidSignature
from connector.domain.webhooks import WebhookIntake
from connector.service.dependencies import Dependencies
from connector.service.lose_credentials import lose_credentials


class WebhookRefused(Exception):
    """Nothing was queued; ``status`` and ``code`` say why to the sender."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad_signature() -> WebhookRefused:
    return WebhookRefused(400, "invalid_signature", "The Stripe-Signature header does not verify.")


def _bad_credentials() -> WebhookRefused:
    return WebhookRefused(401, "unauthorized", "These webhook credentials are not valid.")


def _intake(deps: Dependencies, refusal: Callable[[], WebhookRefused]) -> WebhookIntake:
    # A service wired without intake takes no webhook: refused as unverifiable, like a missing secret.
    if deps.webhooks is None:
        raise refusal()
    return deps.webhooks


async def _enqueue(intake: WebhookIntake, event: ProcessorEventReceived) -> None:
    try:
        await intake.queue.enqueue(event)
    except Exception as error:
        # Not taken: the processor delivers the event again later.
        raise WebhookRefused(
            503, "queue_unavailable", "The event could not be queued; retry later."
        ) from error


def _json_object(payload: bytes) -> Mapping[str, Any]:
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WebhookRefused(400, "invalid_request", "The body is not JSON.") from error
    if not isinstance(body, Mapping):
        raise WebhookRefused(400, "invalid_request", "The body is not a JSON object.")
    return body


async def take_stripe_webhook(
    deps: Dependencies, payload: bytes, signature: str | None
) -> ProcessorEventReceived | None:
    """Verify and queue one Stripe Connect event; the queued event, ``None`` when there is nothing
    to sync (an event of the platform's own account)."""
    intake = _intake(deps, _bad_signature)
    try:
        intake.stripe_secrets.verify(payload, signature, now_s=intake.now_s())
    except InvalidSignature as error:
        raise WebhookRefused(
            400, "invalid_signature", "The Stripe-Signature header does not verify."
        ) from error
    try:
        event = stripe_event(_json_object(payload))
    except MalformedStripeEvent as error:
        raise WebhookRefused(400, "invalid_request", str(error)) from error
    if event is None:
        return None
    if event.event_type == STRIPE_DEAUTHORIZED:
        await _deauthorized(deps, intake, event)
        return event
    await _enqueue(intake, event)
    return event


async def _deauthorized(deps: Dependencies, intake: WebhookIntake, event: ProcessorEventReceived) -> None:
    """The account removed our platform's access: its connection needs reconnecting (once)."""
    try:
        connection = await intake.stripe_accounts.connection_of(event.processor_account_id)
        if (
            connection is not None
            and connection.status is ConnectionStatus.CONNECTED
            and not before_reconnect(connection, event.created)
        ):
            await lose_credentials(deps, connection.connection_id, DEAUTHORIZED)
    except Exception as error:
        # Not recorded: Stripe delivers the event again later.
        raise WebhookRefused(
            503, "store_unavailable", "The event could not be recorded; retry later."
        ) from error


async def take_chargebee_webhook(
    deps: Dependencies, connection_id: str, username: str, password: str, payload: bytes
) -> ProcessorEventReceived | None:
    """Check the connection's Basic credentials and queue the event (``None``: not synced any more)."""
    intake = _intake(deps, _bad_credentials)
    connection = await deps.connections.get(connection_id)
    if connection is None or not credentials_match(
        expected_username=connection.webhook_username,
        expected_sha256=connection.webhook_password_sha256,
        username=username,
        password=password,
    ):
        raise _bad_credentials()
    if connection.status is not ConnectionStatus.CONNECTED or not connection.site:
        # Answered as taken: Chargebee would retry a failure for days, and nothing is left to sync.
        return None
    try:
        event = chargebee_event(
            _json_object(payload),
            site=connection.site,
            connection_id=connection.connection_id,
            account_id=connection.account_id,
        )
    except MalformedWebhook as error:
        raise WebhookRefused(400, "invalid_request", str(error)) from error
    await _enqueue(intake, event)
    return event

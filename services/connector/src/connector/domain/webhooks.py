"""The ports of webhook intake: where verified events are queued, and the few reads it may make."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from contracts.sync import ProcessorEventReceived, StoredSyncState

from connector.domain.connection import Connection
from connector.domain.stripe_signature import StripeWebhookSecrets

CHARGEBEE_WEBHOOK_PATH = "/v1/webhooks/chargebee/{connection_id}"


class SyncEventQueue(Protocol):
    async def enqueue(self, event: ProcessorEventReceived) -> None:
        """Returns once the broker has the event (the importer applies it)."""
        ...


class StripeAccountDirectory(Protocol):
    async def connection_of(self, stripe_account_id: str) -> Connection | None:
        """The current (else latest) connection of a Stripe account; read only for rare events."""
        ...


class SyncStates(Protocol):
    async def of(self, connection_id: str) -> StoredSyncState | None:
        """What the importer recorded about the connection's sync, if anything."""
        ...


@dataclass(frozen=True)
class WebhookIntake:
    stripe_secrets: StripeWebhookSecrets
    queue: SyncEventQueue
    stripe_accounts: StripeAccountDirectory
    #: ``PUBLIC_BASE_URL``: where processors reach the webhook routes.
    public_base_url: str = "http://localhost:8000"
    now_s: Callable[[], float] = field(default=time.time)

    def chargebee_url(self, connection_id: str) -> str:
        return self.public_base_url + CHARGEBEE_WEBHOOK_PATH.format(connection_id=connection_id)

"""Everything a use case works with, handed in by the composition root (real adapters or fakes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.connections import CredentialCipher
from contracts.events import utc_now

from connector.domain.import_counts import ImportCountsStore
from connector.domain.oauth import StripeConnectPlatform
from connector.domain.ports import (
    ChargebeeGateway,
    Clock,
    ConnectionStore,
    EventPublisher,
    OAuthStateStore,
    SealedSecrets,
    StripeGateway,
)
from connector.domain.webhooks import SyncStates, WebhookIntake


@dataclass(frozen=True)
class Services:
    connections: ConnectionStore
    oauth_states: OAuthStateStore
    stripe: StripeGateway
    chargebee: ChargebeeGateway
    events: EventPublisher
    cipher: CredentialCipher
    sealed_secrets: SealedSecrets
    stripe_platform: StripeConnectPlatform
    clock: Clock = field(default=utc_now)
    #: Counts per resource of each import, for the onboarding page; ``None`` where nobody reads them.
    import_counts: ImportCountsStore | None = None
    #: Processor webhooks taken in and queued for the importer; ``None`` where webhooks are not taken.
    webhooks: WebhookIntake | None = None
    #: What the importer records about each connection's sync; ``None``: ``sync`` is not shown.
    sync_states: SyncStates | None = None

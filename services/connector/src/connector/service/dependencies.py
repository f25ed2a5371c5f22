"""Everything a use case works with, handed in by the composition root (real adapters or fakes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from contracts.connections import CredentialCipher
from contracts.events import utc_now

from connector.domain.import_counts import ImportCountsStore
from connector.domain.oauth import StripeConnectPlatform
from connector.domain.offers import OfferProcessors, OfferStore
from connector.domain.ports import (
    ChargebeeGateway,
    Clock,
    ConnectionStore,
    EventPublisher,
    OAuthStateStore,
    OnboardingLinks,
    SealedSecrets,
    StripeGateway,
)
from connector.domain.return_url import LOCAL_HOSTS, ReturnUrlPolicy
from connector.domain.webhooks import SyncStates, WebhookIntake


@dataclass(frozen=True)
class Dependencies:
    connections: ConnectionStore
    oauth_states: OAuthStateStore
    stripe: StripeGateway
    chargebee: ChargebeeGateway
    events: EventPublisher
    cipher: CredentialCipher
    sealed_secrets: SealedSecrets
    stripe_platform: StripeConnectPlatform
    #: Onboarding links already followed (each opens one session).
    onboarding_links: OnboardingLinks
    clock: Clock = field(default=utc_now)
    #: How long a Stripe connection may wait for its OAuth authorization before it expires (its key
    #: destroyed, the connection ended: ``PENDING_AUTHORIZATION_TTL_S``).
    pending_authorization_ttl: timedelta = timedelta(hours=24)
    #: The first wait before trying again what failed in the background (the relay's interval).
    retry_base: timedelta = timedelta(seconds=5)
    #: Hosts a ``return_url`` may point to (``RETURN_URL_HOSTS``).
    return_urls: ReturnUrlPolicy = field(default_factory=lambda: ReturnUrlPolicy.of(LOCAL_HOSTS))
    #: Counts per resource of each import, for the onboarding page; ``None`` where nobody reads them.
    import_counts: ImportCountsStore | None = None
    #: Processor webhooks taken in and queued for the importer; ``None`` where webhooks are not taken.
    webhooks: WebhookIntake | None = None
    #: What the importer records about each connection's sync; ``None``: ``sync`` is not shown.
    sync_states: SyncStates | None = None
    #: Churn-prevention offers: where they are kept, and the processors that apply them; ``None``
    #: where offers are not served.
    offers: OfferStore | None = None
    offer_processors: OfferProcessors | None = None

"""Use case: what the onboarding page's offers demo shows for an account: which offers it has (and
why not), and a few of its live subscriptions to try one on.

The subscriptions are read at the processor through the connector's own offer adapter (the same
one, with the same stored credentials, that applies the offer), one short list call: the connector
never reads the importer's records. A processor that does not answer leaves the list empty with its
refusal, and the forms still take a subscription id typed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from contracts.events import Feature, Processor

from connector.domain.connection import OFFER_FEATURES, feature_reasons
from connector.domain.offers import DEMO_SUBSCRIPTIONS
from connector.domain.refusals import ConnectionRefused
from connector.service.apply_offer import processor_of, writable_connection
from connector.service.dependencies import Dependencies

#: Why the offers are off where this connector serves none (no offer store or processors given).
NOT_SERVED: Final = "not_served"
#: Why the offers are off without any connection.
NOT_CONNECTED: Final = "not_connected"


@dataclass(frozen=True, slots=True)
class SubscriptionChoice:
    subscription_id: str
    customer_id: str
    status: str
    currency: str
    #: Monthly recurring revenue, in minor units of ``currency`` (the SPEC's formula).
    mrr: int


@dataclass(frozen=True, slots=True)
class OfferChoices:
    processor: Processor | None
    #: The offer features that are off, and why (``read_only_key``, ``needs_reconnect`` ...).
    off: Mapping[Feature, str] = field(default_factory=dict)
    subscriptions: tuple[SubscriptionChoice, ...] = ()
    #: Why the subscriptions could not be listed (the processor did not answer ...), if so.
    listing_refused: ConnectionRefused | None = None

    def on(self, feature: Feature) -> bool:
        return feature not in self.off


async def offer_choices(
    deps: Dependencies, account_id: str, *, limit: int = DEMO_SUBSCRIPTIONS
) -> OfferChoices:
    connection = await deps.connections.active(account_id)
    if connection is None:
        return OfferChoices(None, dict.fromkeys(OFFER_FEATURES, NOT_CONNECTED))
    off = dict(feature_reasons(connection))
    if deps.offers is None or deps.offer_processors is None:
        off = dict.fromkeys(OFFER_FEATURES, NOT_SERVED)
    if len(off) == len(OFFER_FEATURES):
        return OfferChoices(connection.processor, off)
    try:
        processor = processor_of(deps, await writable_connection(deps, account_id))
        found = await processor.live_subscriptions(limit)
    except ConnectionRefused as refusal:
        return OfferChoices(connection.processor, off, listing_refused=refusal)
    choices = tuple(
        SubscriptionChoice(
            subscription_id=subscription.subscription_id,
            customer_id=subscription.customer_id,
            status=subscription.status,
            currency=subscription.currency,
            mrr=subscription.mrr(processor.processor, account_id),
        )
        for subscription in found
    )
    return OfferChoices(connection.processor, off, choices)

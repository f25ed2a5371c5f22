"""Kafka topic names of the public contract (SPEC "Events") and the dead-letter naming rule."""

from typing import Final

ONBOARDING_REQUESTS: Final = "onboarding.requests.v1"
CONNECTIONS: Final = "connections.v1"
IMPORTS: Final = "imports.v1"
NOTIFICATIONS: Final = "notifications.v1"
OFFERS: Final = "offers.v1"

BILLING_CUSTOMERS: Final = "billing.customers.v1"
BILLING_SUBSCRIPTIONS: Final = "billing.subscriptions.v1"
BILLING_INVOICES: Final = "billing.invoices.v1"
BILLING_COUPONS: Final = "billing.coupons.v1"
BILLING_PRICES: Final = "billing.prices.v1"
BILLING_CANCELLATIONS: Final = "billing.cancellations.v1"

BILLING_TOPICS: Final = (
    BILLING_CUSTOMERS,
    BILLING_SUBSCRIPTIONS,
    BILLING_INVOICES,
    BILLING_COUPONS,
    BILLING_PRICES,
    BILLING_CANCELLATIONS,
)

PUBLIC_TOPICS: Final = (ONBOARDING_REQUESTS, CONNECTIONS, IMPORTS, NOTIFICATIONS, OFFERS, *BILLING_TOPICS)


DEAD_LETTER_SUFFIX: Final = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: the original message plus headers saying why."""
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def billing_record_key(account_id: str, processor: str, object_id: str) -> str:
    """Key of a canonical record on a ``billing.*`` topic; compaction keeps its latest state.

    Account ids never hold ``:`` (:data:`contracts.identifiers.ACCOUNT_ID_PATTERN`), so the key
    names one record; one that does is refused rather than published ambiguous.
    """
    if ":" in account_id:
        raise ValueError("an account id may not contain ':'")
    return f"{account_id}:{processor}:{object_id}"

"""What the onboarding page says: messages of refusals and of Stripe's return, names, features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from contracts.events import Feature, Processor

from connector.domain.refusals import RefusalCode

#: What the Stripe callback's ``?status=error&code=…`` means for the person (never the query's text).
STRIPE_RETURN_MESSAGES: Final[Mapping[str, str]] = {
    RefusalCode.ACCOUNT_MISMATCH: "You authorized a different Stripe account than the one the API key "
    "belongs to. Sign in to the key's account on Stripe and start again.",
    RefusalCode.AUTHORIZATION_FAILED: "Stripe did not complete the authorization. Please start the "
    "connection again.",
    RefusalCode.PROCESSOR_UNAVAILABLE: "Stripe did not answer in time. Nothing was saved; please try "
    "again in a moment.",
    RefusalCode.DIFFERENT_PROCESSOR_ACCOUNT: "You authorized a different Stripe account than the one "
    "this connection was made with. Sign in to that account on Stripe and reconnect again.",
    RefusalCode.RATE_LIMITED: "Stripe is limiting requests right now. Nothing was saved; please try "
    "again shortly.",
}
STRIPE_DENIED_MESSAGE: Final = (
    "You did not allow access on Stripe, so nothing was connected. You can start again, connect "
    "Chargebee instead or skip this step."
)
STRIPE_ERROR_MESSAGE: Final = "Stripe could not be connected. Please start the connection again."
EMAIL_MESSAGE: Final = (
    "Enter the email address where we should tell you that the import is done, like name@example.com."
)
CSRF_MESSAGE: Final = "This form is out of date. Nothing was saved; please fill it in again."

PROCESSOR_NAMES: Final = {Processor.STRIPE: "Stripe", Processor.CHARGEBEE: "Chargebee"}
FEATURE_DESCRIPTIONS: Final[Mapping[Feature, tuple[str, str]]] = {
    Feature.PAST_CANCELLATIONS: ("Past cancellations", "who cancelled before today, when and why"),
    Feature.CHURN_METRICS: ("Churn metrics", "customer and revenue churn month by month"),
    Feature.RECOVERED_REVENUE: ("Recovered revenue", "what won-back customers are worth"),
    Feature.COUPON_OFFERS: ("Coupon offers", "discounts offered to people about to cancel"),
    Feature.TRIAL_EXTENSION_OFFERS: (
        "Trial extension offers",
        "longer trials offered instead of a cancellation",
    ),
}
#: The order resources are listed in; any other resource the importer reports follows, by name.
RESOURCE_ORDER: Final = ("customers", "subscriptions", "invoices", "prices", "products", "plans", "coupons")


def resource_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def ordered_resources(resources: Mapping[str, int]) -> list[tuple[str, int]]:
    known = [(name, resources[name]) for name in RESOURCE_ORDER if name in resources]
    others = sorted((name, count) for name, count in resources.items() if name not in RESOURCE_ORDER)
    return known + others

"""What the onboarding page says: messages of refusals and of Stripe's return, names, features."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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


#: Why an offer feature is off, for the person (``feature_reasons`` and the demo's own reasons).
OFFER_OFF_REASONS: Final[Mapping[str, str]] = {
    "read_only_key": "the API key you connected may only read, so nothing can be changed at your "
    "processor. Connect a key with write access to turn offers on.",
    "read_only_grant": "Stripe granted this connection read-only access, so nothing can be changed "
    "there. Connect again and allow read and write access to turn offers on.",
    "not_verified": "we could not check, without changing anything, that your processor lets us "
    "change subscriptions, so offers stay off.",
    "needs_reconnect": "your processor no longer accepts the stored credentials; reconnect it first.",
    "skipped": "no processor is connected.",
    "not_connected": "no processor is connected.",
    "awaiting_authorization": "the processor's authorization is not finished.",
    "disconnected": "the processor was disconnected.",
    "not_served": "this installation does not apply offers.",
}
OFFER_OFF_FALLBACK: Final = "your connection does not allow it."
#: Currencies whose minor unit is the unit (ISO 4217 exponent 0), as Stripe counts them.
ZERO_DECIMAL_CURRENCIES: Final = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)


def offer_off_reason(reason: str) -> str:
    return OFFER_OFF_REASONS.get(reason, OFFER_OFF_FALLBACK)


def money(minor_units: int, currency: str) -> str:
    """An amount in minor units as people read it: ``USD 49.00``, ``JPY 4,900``."""
    if currency.upper() in ZERO_DECIMAL_CURRENCIES:
        return f"{currency.upper()} {minor_units:,}"
    return f"{currency.upper()} {Decimal(minor_units).scaleb(-2):,.2f}"

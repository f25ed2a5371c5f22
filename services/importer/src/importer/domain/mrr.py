"""MRR of a subscription: the SPEC's formula lives in :mod:`contracts.mrr`, shared with the connector
(which reports ``mrr_before``/``mrr_after`` of the offers it applies)."""

from contracts.mrr import (
    billing_factor,
    exact_subscription_mrr,
    item_monthly_amount,
    monthly_factor,
    needs_coupons,
    resolve_discount,
    round_minor_units,
    subscription_mrr,
)
from contracts.records import SubscriptionRecord

__all__ = [
    "billing_factor",
    "exact_subscription_mrr",
    "item_monthly_amount",
    "monthly_factor",
    "needs_coupons",
    "resolve_discount",
    "round_minor_units",
    "subscription_mrr",
    "with_mrr",
]


def with_mrr(subscription: SubscriptionRecord) -> SubscriptionRecord:
    """The subscription with its MRR, where it needs no coupon; else as it is, its MRR computed
    once the coupons it references are known."""
    if needs_coupons(subscription):
        return subscription
    return subscription.model_copy(update={"mrr": subscription_mrr(subscription, {})})

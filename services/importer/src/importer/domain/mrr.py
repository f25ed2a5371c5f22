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

__all__ = [
    "billing_factor",
    "exact_subscription_mrr",
    "item_monthly_amount",
    "monthly_factor",
    "needs_coupons",
    "resolve_discount",
    "round_minor_units",
    "subscription_mrr",
]

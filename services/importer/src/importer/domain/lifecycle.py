"""When a subscription lived and paid: the SPEC's "live at t" and "paying", for both processors.

Definitions (docs/metrics.md):

- it *started* at ``started_at`` (Stripe ``start_date``, Chargebee ``started_at``);
- it *ended* at ``ended_at``, else, once its status says it is cancelled, at ``canceled_at``. A
  cancellation that is only scheduled (Stripe ``cancel_at_period_end``, Chargebee
  ``non_renewing``) is not an end until it happens: Stripe sets ``canceled_at`` when the
  cancellation is *requested* while the subscription keeps running and billing;
- it is *live at t* when started at or before t and not ended by t (an end at exactly t is ended);
- it is *paying at t* when live at t, its status is not one of trial, paused or future, and any
  trial it had was over by t (``trial_end <= t``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from contracts.records import SubscriptionRecord

CANCELED_STATUSES: Final = frozenset({"canceled", "cancelled"})
#: Statuses that never pay (SPEC): in trial, paused, not yet started.
NOT_PAYING_STATUSES: Final = frozenset({"trialing", "in_trial", "paused", "future"})


def is_canceled(subscription: SubscriptionRecord) -> bool:
    """A past cancellation: status ``canceled`` (Stripe) or ``cancelled`` (Chargebee)."""
    return subscription.status in CANCELED_STATUSES


def ended_at(subscription: SubscriptionRecord) -> datetime | None:
    if subscription.ended_at is not None:
        return subscription.ended_at
    if is_canceled(subscription):
        return subscription.canceled_at
    return None


def paying_from(subscription: SubscriptionRecord) -> datetime | None:
    """The first instant the subscription was paying, or ``None`` if it never pays."""
    if subscription.status in NOT_PAYING_STATUSES or subscription.started_at is None:
        return None
    start = subscription.started_at
    if subscription.trial_end is not None and subscription.trial_end > start:
        start = subscription.trial_end
    end = ended_at(subscription)
    if end is not None and end <= start:
        return None
    return start

"""Past cancellations: every cancelled subscription, with the MRR its cancellation lost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from contracts.records import CancellationRecord, CouponRecord, Money, SubscriptionRecord

from importer.domain.lifecycle import is_canceled
from importer.domain.mrr import subscription_mrr


def cancellation_of(
    subscription: SubscriptionRecord, coupons: Mapping[str, CouponRecord]
) -> CancellationRecord | None:
    """The cancellation a subscription records, or ``None`` when it is not cancelled."""
    if not is_canceled(subscription):
        return None
    return CancellationRecord(
        account_id=subscription.account_id,
        processor=subscription.processor,
        # One cancellation per subscription: a subscription is cancelled once.
        object_id=subscription.object_id,
        created_at=subscription.canceled_at or subscription.ended_at,
        customer_id=subscription.customer_id,
        subscription_id=subscription.object_id,
        canceled_at=subscription.canceled_at,
        ended_at=subscription.ended_at,
        reason=subscription.cancel_reason,
        reason_code=subscription.cancel_reason_code,
        feedback=subscription.cancel_feedback,
        comment=subscription.cancel_comment,
        mrr_lost=Money(amount=subscription_mrr(subscription, coupons), currency=subscription.currency),
        plan=subscription.plan,
    )


def derive_cancellations(
    subscriptions: Iterable[SubscriptionRecord], coupons: Mapping[str, CouponRecord]
) -> list[CancellationRecord]:
    """The past cancellations among ``subscriptions``, newest first (by ``canceled_at``)."""
    found = [
        record
        for record in (cancellation_of(subscription, coupons) for subscription in subscriptions)
        if record is not None
    ]
    found.sort(key=_newest_first_key, reverse=True)
    return found


def _newest_first_key(record: CancellationRecord) -> tuple[float, str]:
    moment = record.canceled_at or record.ended_at
    return (float("-inf") if moment is None else moment.timestamp(), record.object_id)

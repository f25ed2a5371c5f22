"""Past cancellations: cancelled subscriptions only, with their reasons and the MRR they lost."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.events import Processor
from contracts.records import (
    CancellationRecord,
    CouponRecord,
    Discount,
    Money,
    SubscriptionItem,
    SubscriptionRecord,
)
from importer.domain.cancellations import derive_cancellations


def at(day: int) -> datetime:
    return datetime(2024, 3, day, tzinfo=UTC)


def sub(
    object_id: str, status: str, processor: Processor = Processor.STRIPE, **fields: object
) -> SubscriptionRecord:
    return SubscriptionRecord.model_validate(
        {
            "account_id": "acct",
            "processor": processor,
            "object_id": object_id,
            "customer_id": f"cus_{object_id}",
            "status": status,
            "currency": "USD",
            "items": [SubscriptionItem(price_id="price_pro", unit_amount=29000, interval="year")],
            "plan": "price_pro",
            **fields,
        }
    )


def test_only_cancelled_subscriptions_newest_first_with_what_they_lost() -> None:
    stripe_cancelled = sub(
        "sub_1",
        "canceled",
        canceled_at=at(2),
        ended_at=at(2),
        cancel_reason="cancellation_requested",
        cancel_feedback="too_expensive",
        cancel_comment="Budget cuts",
    )
    chargebee_cancelled = sub(
        "cb_1",
        "cancelled",
        Processor.CHARGEBEE,
        canceled_at=at(9),
        ended_at=at(9),
        cancel_reason="not_paid",
        cancel_reason_code="Payment failed",
        discounts=[Discount(coupon_id="HALF")],
    )
    scheduled = sub("sub_2", "active", canceled_at=at(5), cancel_at_period_end=True)
    non_renewing = sub(
        "cb_2", "non_renewing", Processor.CHARGEBEE, canceled_at=at(30), cancel_at_period_end=True
    )
    coupons = {
        "HALF": CouponRecord(
            account_id="acct", processor=Processor.CHARGEBEE, object_id="HALF", percent_off=50.0
        )
    }

    found = derive_cancellations([stripe_cancelled, scheduled, chargebee_cancelled, non_renewing], coupons)

    assert found == [
        CancellationRecord(
            account_id="acct",
            processor=Processor.CHARGEBEE,
            object_id="cb_1",
            created_at=at(9),
            customer_id="cus_cb_1",
            subscription_id="cb_1",
            canceled_at=at(9),
            ended_at=at(9),
            reason="not_paid",
            reason_code="Payment failed",
            mrr_lost=Money(amount=1208, currency="USD"),  # 29000 / 12 × 0.5 = 1208.33
            plan="price_pro",
        ),
        CancellationRecord(
            account_id="acct",
            processor=Processor.STRIPE,
            object_id="sub_1",
            created_at=at(2),
            customer_id="cus_sub_1",
            subscription_id="sub_1",
            canceled_at=at(2),
            ended_at=at(2),
            reason="cancellation_requested",
            feedback="too_expensive",
            comment="Budget cuts",
            mrr_lost=Money(amount=2417, currency="USD"),  # 29000 / 12 = 2416.67
            plan="price_pro",
        ),
    ]
    assert found[0].key() == "acct:chargebee:cb_1"


def test_no_cancellations() -> None:
    assert derive_cancellations([sub("sub_1", "active")], {}) == []

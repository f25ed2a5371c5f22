"""Offer rules: what a body may ask, fingerprints and processor keys, where a trial end moves, MRR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from connector.adapters.chargebee_writes import offer_subscription as chargebee_subscription
from connector.adapters.stripe_writes import offer_subscription as stripe_subscription
from connector.domain.offers import (
    CouponTerms,
    OfferRequest,
    OfferSubscription,
    created_coupon_id,
    idempotency_key,
    processor_key,
)
from connector.domain.refusals import ConnectionRefused, RefusalCode
from contracts.events import Processor
from contracts.records import Discount, SubscriptionItem

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "terms",
    [
        {"duration": "once", "percent_off": Decimal(101)},
        {"duration": "once", "percent_off": Decimal(0)},
        {"duration": "once", "amount_off": 500},
        {"duration": "once", "amount_off": 500, "currency": "XYZ"},
        {"duration": "once", "amount_off": -5, "currency": "USD"},
        {"duration": "once", "percent_off": Decimal(10), "amount_off": 5, "currency": "USD"},
        {"duration": "repeating", "percent_off": Decimal(10)},
        {"duration": "forever", "percent_off": Decimal(10), "duration_in_months": 3},
    ],
)
def test_coupon_terms_no_processor_accepts_are_refused(terms: dict[str, object]) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        CouponTerms(**terms)  # type: ignore[arg-type]
    assert refused.value.code is RefusalCode.INVALID_REQUEST


@pytest.mark.parametrize("days", [0, -1, 366, None])
def test_trial_extension_days_are_1_to_365(days: int | None) -> None:
    with pytest.raises(ConnectionRefused):
        OfferRequest(kind="trial_extension", subscription_id="sub_1", days=days)


def test_a_coupon_offer_names_a_coupon_or_describes_one() -> None:
    with pytest.raises(ConnectionRefused):
        OfferRequest(kind="coupon", subscription_id="sub_1")
    terms = CouponTerms(duration="once", percent_off=Decimal(5))
    with pytest.raises(ConnectionRefused):
        OfferRequest(kind="coupon", subscription_id="sub_1", coupon_id="VIP", coupon=terms)


def test_the_fingerprint_is_the_body_not_its_spelling() -> None:
    a = OfferRequest("coupon", "sub_1", coupon=CouponTerms(duration="once", percent_off=Decimal("20")))
    b = OfferRequest("coupon", "sub_1", coupon=CouponTerms(duration="once", percent_off=Decimal("20.0")))
    c = OfferRequest("coupon", "sub_1", coupon=CouponTerms(duration="once", percent_off=Decimal("21")))
    assert a.digest() == b.digest() != c.digest()


def test_processor_keys_are_derived_from_ours_and_scoped_to_the_account() -> None:
    assert processor_key("acc_1", "k", "apply") == processor_key("acc_1", "k", "apply")
    keys = {
        processor_key("acc_1", "k", "apply"),
        processor_key("acc_2", "k", "apply"),
        processor_key("acc_1", "k2", "apply"),
        processor_key("acc_1", "k", "coupon"),
    }
    assert len(keys) == 4
    assert all(len(key) <= 255 for key in keys)
    assert (
        created_coupon_id("acc_1", "k") == created_coupon_id("acc_1", "k") != created_coupon_id("acc_2", "k")
    )


@pytest.mark.parametrize("raw", [None, "", "x" * 256])
def test_an_idempotency_key_is_1_to_255_characters(raw: str | None) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        idempotency_key(raw)
    assert refused.value.code is RefusalCode.IDEMPOTENCY_KEY_REQUIRED


def subscription(status: str, **changes: object) -> OfferSubscription:
    values: dict[str, object] = {
        "subscription_id": "sub_1",
        "customer_id": "cus_1",
        "status": status,
        "currency": "USD",
        "items": [
            SubscriptionItem(unit_amount=9900, quantity=2),
            SubscriptionItem(unit_amount=12000, interval="year"),
        ],
        "discounts": [],
        "trial_end": T0,
        "current_period_end": T0 + timedelta(days=5),
        **changes,
    }
    return OfferSubscription(**values)  # type: ignore[arg-type]


def test_a_trial_moves_its_end_and_a_paying_subscription_its_next_billing_date() -> None:
    assert subscription("trialing").extended_end(10) == T0 + timedelta(days=10)
    assert subscription("in_trial").extended_end(1) == T0 + timedelta(days=1)
    assert subscription("active").extended_end(7) == T0 + timedelta(days=12)
    with pytest.raises(ConnectionRefused) as refused:
        subscription("paused").extended_end(7)
    assert refused.value.code is RefusalCode.OFFER_NOT_APPLICABLE


def test_mrr_by_the_spec_even_in_trial() -> None:
    # 2 × 99.00 monthly + 120.00 yearly (10.00 a month) = 208.00; 25 % off forever = 156.00.
    assert subscription("trialing").mrr(Processor.STRIPE, "acc") == 20800
    discounted = subscription("trialing", discounts=[Discount(coupon_id="VIP25", percent_off=25.0)])
    assert discounted.mrr(Processor.STRIPE, "acc") == 15600
    # An amount off per billing period (the first item's: monthly) of 50.00: 158.00.
    amount = subscription("active", discounts=[Discount(coupon_id="OFF", amount_off=5000)])
    assert amount.mrr(Processor.CHARGEBEE, "acc") == 15800


def test_stripe_subscription_shape_with_a_once_coupon_that_does_not_lower_mrr() -> None:
    raw = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "active",
        "currency": "usd",
        "current_period_end": 1_800_000_000,
        "items": {
            "data": [
                {
                    "quantity": 3,
                    "price": {
                        "id": "price_1",
                        "unit_amount": 1000,
                        "recurring": {"interval": "week", "interval_count": 1},
                    },
                }
            ]
        },
        "discount": {"id": "di_1", "coupon": {"id": "ONCE", "duration": "once", "percent_off": 50}},
        "discounts": ["di_1"],
    }
    found = stripe_subscription(raw)
    assert (found.currency, found.customer_id, found.discounts) == ("USD", "cus_1", [])
    # 3 × 10.00 weekly × 52 ÷ 12 = 130.00
    assert found.mrr(Processor.STRIPE, "acc") == 13000


def test_chargebee_catalog_1_and_2_shapes() -> None:
    pc2 = chargebee_subscription(
        {
            "id": "s2",
            "customer_id": "c",
            "status": "in_trial",
            "currency_code": "EUR",
            "billing_period": 1,
            "billing_period_unit": "month",
            "trial_end": 1_800_000_000,
            "subscription_items": [
                {"item_price_id": "p", "item_type": "plan", "quantity": 2, "unit_price": 1500},
                {"item_price_id": "fee", "item_type": "charge", "quantity": 1, "unit_price": 9999},
            ],
        },
        [Discount(coupon_id="X", percent_off=10.0)],
    )
    assert pc2.mrr(Processor.CHARGEBEE, "acc") == 2700
    pc1 = chargebee_subscription(
        {
            "id": "s1",
            "customer_id": "c",
            "status": "active",
            "currency_code": "USD",
            "billing_period": 1,
            "billing_period_unit": "year",
            "plan_id": "pro",
            "plan_unit_price": 29000,
            "plan_quantity": 1,
            "addons": [{"id": "seat", "unit_price": 1200, "quantity": 5}],
        },
        [],
    )
    # (290.00 + 5 × 12.00) ÷ 12 = 29.1666… → 29.17
    assert pc1.mrr(Processor.CHARGEBEE, "acc") == 2917

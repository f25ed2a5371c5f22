"""MRR of one subscription against hand-computed cases (SPEC "Metrics")."""

from __future__ import annotations

from fractions import Fraction

import pytest
from contracts.events import Processor
from contracts.records import CouponRecord, Discount, Money, SubscriptionItem, SubscriptionRecord
from hypothesis import given, settings
from hypothesis import strategies as st
from importer.domain.mrr import (
    exact_subscription_mrr,
    monthly_factor,
    needs_coupons,
    round_minor_units,
    subscription_mrr,
)


def subscription(
    *items: SubscriptionItem, discounts: list[Discount] | None = None, currency: str = "USD"
) -> SubscriptionRecord:
    return SubscriptionRecord(
        account_id="acct",
        processor=Processor.STRIPE,
        object_id="sub_1",
        customer_id="cus_1",
        status="active",
        currency=currency,
        items=list(items),
        discounts=discounts or [],
    )


def item(amount: int, interval: str = "month", count: int = 1, quantity: int = 1) -> SubscriptionItem:
    return SubscriptionItem(unit_amount=amount, interval=interval, interval_count=count, quantity=quantity)


def coupon(coupon_id: str, *, percent: float | None = None, amount: Money | None = None) -> CouponRecord:
    return CouponRecord(
        account_id="acct",
        processor=Processor.CHARGEBEE,
        object_id=coupon_id,
        percent_off=percent,
        amount_off=amount,
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([item(2900)], 2900),
        ([item(2900), item(1000, quantity=3)], 5900),  # 2900 + 3 × 1000
        ([item(9900, quantity=5)], 49500),  # per seat
        ([item(29000, "year")], 2417),  # 29000 / 12 = 2416.67
        ([item(7900, "month", 3)], 2633),  # 7900 / 3 = 2633.33
        ([item(99000, "year", 2)], 4125),  # 99000 / 24 = 4125
        ([item(500, "week")], 2167),  # 500 × 52 / 12 = 2166.67
        ([item(500, "week", 2)], 1083),  # 500 × 52 / 24 = 1083.33
        ([item(100, "day")], 3042),  # 100 × 365 / 12 = 3041.67
        ([item(1000, "month", quantity=0)], 0),  # a metered item: no recurring amount
        ([], 0),
    ],
)
def test_items_are_normalised_to_a_month(items: list[SubscriptionItem], expected: int) -> None:
    assert subscription_mrr(subscription(*items), {}) == expected


def test_a_half_minor_unit_rounds_up_not_to_even() -> None:
    # 30 / 12 = 2.5 exactly: half-up gives 3 (banker's rounding would give 2).
    assert subscription_mrr(subscription(item(30, "year")), {}) == 3
    # 54 / 12 = 4.5: half-up 5 (banker's 4).
    assert subscription_mrr(subscription(item(54, "year")), {}) == 5
    assert round_minor_units(Fraction(5, 2)) == 3
    assert round_minor_units(Fraction(7, 3)) == 2


def test_the_weekly_factor_is_exact() -> None:
    assert monthly_factor("week", 1) == Fraction(13, 3)
    assert monthly_factor("day", 1) == Fraction(365, 12)
    with pytest.raises(ValueError, match="interval_count"):
        monthly_factor("month", 0)


@pytest.mark.parametrize(
    ("discounts", "expected"),
    [
        ([Discount(percent_off=20.0)], 2320),  # 2900 × 0.8
        ([Discount(percent_off=33.33)], 1933),  # 2900 × 0.6667 = 1933.43
        ([Discount(percent_off=100.0)], 0),
        ([Discount(amount_off=500)], 2400),
        ([Discount(amount_off=5000)], 0),  # not below 0
        ([Discount(percent_off=20.0), Discount(amount_off=500)], 1820),  # in order: 2320 − 500
        ([Discount(amount_off=500), Discount(percent_off=20.0)], 1920),  # (2900 − 500) × 0.8
    ],
)
def test_discounts_come_off_a_monthly_subscription(discounts: list[Discount], expected: int) -> None:
    assert subscription_mrr(subscription(item(2900), discounts=discounts), {}) == expected


def test_an_amount_off_is_normalised_like_the_items() -> None:
    yearly = subscription(item(29000, "year"), discounts=[Discount(amount_off=1200)])
    # (29000 − 1200) / 12 = 2316.67
    assert subscription_mrr(yearly, {}) == 2317
    quarterly = subscription(item(7900, "month", 3), discounts=[Discount(amount_off=900)])
    # (7900 − 900) / 3 = 2333.33
    assert subscription_mrr(quarterly, {}) == 2333
    weekly = subscription(item(500, "week"), discounts=[Discount(amount_off=100)])
    # (500 − 100) × 52 / 12 = 1733.33
    assert subscription_mrr(weekly, {}) == 1733


def test_coupon_references_resolve_through_the_coupons() -> None:
    coupons = {
        "VIP25": coupon("VIP25", percent=25.0),
        "EURO10": coupon("EURO10", amount=Money(amount=1000, currency="EUR")),
        "USD5": coupon("USD5", amount=Money(amount=500, currency="USD")),
    }
    vip = subscription(item(2900), discounts=[Discount(coupon_id="VIP25")])
    euro_on_usd = subscription(item(2900), discounts=[Discount(coupon_id="EURO10")])
    euro_on_eur = subscription(item(2700), discounts=[Discount(coupon_id="EURO10")], currency="EUR")
    usd = subscription(item(2900), discounts=[Discount(coupon_id="USD5")])
    unknown = subscription(item(2900), discounts=[Discount(coupon_id="GONE")])

    assert subscription_mrr(vip, coupons) == 2175  # 2900 × 0.75
    assert subscription_mrr(euro_on_usd, coupons) == 2900  # another currency's amount does not apply
    assert subscription_mrr(euro_on_eur, coupons) == 1700
    assert subscription_mrr(usd, coupons) == 2400
    assert subscription_mrr(unknown, coupons) == 2900
    assert needs_coupons(vip)
    assert not needs_coupons(subscription(item(2900), discounts=[Discount(coupon_id="X", percent_off=5.0)]))


def test_status_does_not_change_the_mrr_of_a_subscription() -> None:
    cancelled = subscription(item(2900)).model_copy(update={"status": "canceled"})
    assert subscription_mrr(cancelled, {}) == 2900


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(
        st.builds(
            item,
            amount=st.integers(min_value=-(10**9), max_value=10**12),
            interval=st.sampled_from(["month", "year", "week", "day"]),
            count=st.integers(min_value=1, max_value=36),
            quantity=st.integers(min_value=0, max_value=10_000),
        ),
        max_size=4,
    ),
    one_period=st.booleans(),
)
def test_undiscounted_mrr_in_whole_numbers_equals_the_exact_rational_path(
    items: list[SubscriptionItem], one_period: bool
) -> None:
    # Without discounts on one billing period, MRR is summed and rounded in whole numbers; it is
    # the rational path's answer (items on several periods take the rational path).
    if one_period and items:
        items = [
            entry.model_copy(
                update={"interval": items[0].interval, "interval_count": items[0].interval_count}
            )
            for entry in items
        ]
    record = subscription(*items)
    assert subscription_mrr(record, {}) == round_minor_units(exact_subscription_mrr(record, {}))

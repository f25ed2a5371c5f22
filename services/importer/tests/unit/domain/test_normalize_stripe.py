"""Stripe list objects (exact API JSON) as canonical records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.events import Processor
from contracts.records import (
    CouponRecord,
    CustomerRecord,
    Discount,
    InvoiceRecord,
    Money,
    PriceRecord,
    SubscriptionRecord,
)
from importer.domain.normalize import MalformedObject, normalizer_for
from importer.domain.source import NormalizationContext

CONTEXT = NormalizationContext(account_id="acct_42")
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def normalize(resource: str, raw: dict[str, Any]) -> list[Any]:
    return normalizer_for(Processor.STRIPE).normalize(resource, raw, CONTEXT)


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def price_json(
    price_id: str = "price_pro_m", amount: int = 2900, interval: str = "month", count: int = 1
) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "created": T0,
        "currency": "usd",
        "nickname": "Pro monthly",
        "product": "prod_pro",
        "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def subscription_json(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "sub_1",
        "object": "subscription",
        "created": T0,
        "currency": "usd",
        "customer": "cus_1",
        "status": "active",
        "start_date": T0,
        "trial_end": None,
        "current_period_end": T0 + 30 * 86_400,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "discount": None,
        "discounts": [],
        "items": {
            "object": "list",
            "data": [
                {"id": "si_1", "object": "subscription_item", "price": price_json(), "quantity": 2},
                {
                    "id": "si_2",
                    "object": "subscription_item",
                    "price": price_json("price_seats", 1000),
                    "quantity": 3,
                },
            ],
            "has_more": False,
        },
    }
    raw.update(overrides)
    return raw


def discount_json(coupon: dict[str, Any] | str) -> dict[str, Any]:
    return {
        "id": "di_1",
        "object": "discount",
        "coupon": coupon,
        "start": T0,
        "end": None,
        "subscription": "sub_1",
    }


def coupon_json(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "LAUNCH20",
        "object": "coupon",
        "amount_off": None,
        "created": T0,
        "currency": None,
        "duration": "repeating",
        "duration_in_months": 3,
        "name": "Launch offer",
        "percent_off": 20.0,
        "valid": True,
    }
    raw.update(overrides)
    return raw


def test_customer() -> None:
    raw = {
        "id": "cus_1",
        "object": "customer",
        "created": T0,
        "email": "ada@example.com",
        "name": "Ada",
        "currency": "eur",
    }

    assert normalize("customers", raw) == [
        CustomerRecord(
            account_id="acct_42",
            processor=Processor.STRIPE,
            object_id="cus_1",
            created_at=utc(T0),
            email="ada@example.com",
            name="Ada",
            currency="EUR",
        )
    ]


def test_an_active_subscription_with_quantities_and_its_mrr() -> None:
    [record] = normalize("subscriptions", subscription_json())

    assert isinstance(record, SubscriptionRecord)
    assert record.object_id == "sub_1"
    assert record.customer_id == "cus_1"
    assert record.currency == "USD"
    assert record.started_at == utc(T0)
    assert record.plan == "price_pro_m"
    assert [(item.price_id, item.unit_amount, item.quantity, item.interval) for item in record.items] == [
        ("price_pro_m", 2900, 2, "month"),
        ("price_seats", 1000, 3, "month"),
    ]
    assert record.mrr == 2 * 2900 + 3 * 1000


def test_an_embedded_discount_coupon_is_taken_into_the_mrr() -> None:
    # The legacy single ``discount`` (``discounts`` holding only ids), as API versions up to 2024 serve it.
    legacy = subscription_json(discount=discount_json(coupon_json()), discounts=["di_1"])
    # ``expand[]=data.discounts``: the discount objects themselves.
    expanded = subscription_json(discounts=[discount_json(coupon_json())])
    # Newer API versions: the coupon under ``source``.
    basil = subscription_json(
        discounts=[
            {"id": "di_1", "object": "discount", "source": {"coupon": coupon_json(), "type": "coupon"}}
        ]
    )

    for raw in (legacy, expanded, basil):
        [record] = normalize("subscriptions", raw)
        assert record.discounts == [Discount(coupon_id="LAUNCH20", percent_off=20.0)]
        assert record.mrr == 7040  # (5800 + 3000) × 0.8


def test_an_amount_off_coupon_in_another_currency_uses_its_currency_option_or_nothing() -> None:
    euro_coupon = coupon_json(
        percent_off=None, amount_off=1000, currency="eur", currency_options={"usd": {"amount_off": 1100}}
    )
    plain_euro_coupon = coupon_json(percent_off=None, amount_off=1000, currency="eur")

    [with_option] = normalize("subscriptions", subscription_json(discounts=[discount_json(euro_coupon)]))
    [without] = normalize("subscriptions", subscription_json(discounts=[discount_json(plain_euro_coupon)]))

    assert with_option.mrr == 8800 - 1100
    assert without.mrr == 8800


def test_a_discount_known_only_by_coupon_id_leaves_the_mrr_for_later() -> None:
    [record] = normalize("subscriptions", subscription_json(discounts=[discount_json("LAUNCH20")]))

    assert record.discounts == [Discount(coupon_id="LAUNCH20")]
    assert record.mrr == 0


def test_a_cancelled_subscription_keeps_its_cancellation_details() -> None:
    raw = subscription_json(
        status="canceled",
        canceled_at=T0 + 100,
        ended_at=T0 + 200,
        cancel_at_period_end=True,
        cancellation_details={
            "comment": "Budget cuts",
            "feedback": "too_expensive",
            "reason": "cancellation_requested",
        },
    )

    [record] = normalize("subscriptions", raw)

    assert (record.status, record.canceled_at, record.ended_at) == ("canceled", utc(T0 + 100), utc(T0 + 200))
    assert record.cancel_at_period_end is True
    assert (record.cancel_reason, record.cancel_feedback, record.cancel_comment) == (
        "cancellation_requested",
        "too_expensive",
        "Budget cuts",
    )
    assert record.cancel_reason_code is None


def test_newer_shapes_period_end_on_items_and_legacy_plans_and_metered_items() -> None:
    legacy_plan = {
        "id": "gold-monthly",
        "object": "plan",
        "amount": 4900,
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
    }
    metered = price_json("price_api_calls", 5)
    metered["recurring"]["usage_type"] = "metered"
    raw = subscription_json(
        current_period_end=None,
        currency=None,
        items={
            "data": [
                {"id": "si_1", "plan": legacy_plan, "quantity": 1, "current_period_end": T0 + 99},
                {"id": "si_2", "price": metered, "current_period_end": T0 + 99},
            ]
        },
    )

    [record] = normalize("subscriptions", raw)

    assert record.current_period_end == utc(T0 + 99)
    assert record.currency == "USD"  # from the items when the subscription has none
    assert record.mrr == 4900
    assert record.items[1].quantity == 0


def test_yearly_quarterly_and_weekly_prices() -> None:
    items = {
        "data": [
            {"id": "si_1", "price": price_json("price_y", 29000, "year"), "quantity": 1},
        ]
    }
    [yearly] = normalize("subscriptions", subscription_json(items=items))
    items["data"][0]["price"] = price_json("price_q", 7900, "month", 3)
    [quarterly] = normalize("subscriptions", subscription_json(items=items))

    assert (yearly.items[0].interval, yearly.mrr) == ("year", 2417)
    assert (quarterly.items[0].interval_count, quarterly.mrr) == (3, 2633)


def test_price_with_expanded_product_and_legacy_plan() -> None:
    price = price_json() | {"product": {"id": "prod_pro", "object": "product", "name": "Pro"}}
    one_off = price_json("price_setup", 5000) | {"type": "one_time", "recurring": None}
    plan = {
        "id": "gold-monthly",
        "object": "plan",
        "active": False,
        "amount": 4900,
        "created": T0,
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
        "nickname": None,
        "product": "prod_gold",
    }

    assert normalize("prices", price) == [
        PriceRecord(
            account_id="acct_42",
            processor=Processor.STRIPE,
            object_id="price_pro_m",
            created_at=utc(T0),
            product_id="prod_pro",
            name="Pro",
            currency="USD",
            unit_amount=2900,
            interval="month",
            interval_count=1,
            recurring=True,
            active=True,
        )
    ]
    [setup] = normalize("prices", one_off)
    assert (setup.recurring, setup.interval) == (False, None)
    [gold] = normalize("plans", plan)
    assert (gold.object_id, gold.unit_amount, gold.active, gold.product_id) == (
        "gold-monthly",
        4900,
        False,
        "prod_gold",
    )
    assert normalize("products", {"id": "prod_pro", "object": "product", "name": "Pro"}) == []


def test_coupons() -> None:
    [percent] = normalize("coupons", coupon_json())
    [amount] = normalize(
        "coupons",
        coupon_json(
            id="WELCOME5", percent_off=None, amount_off=500, currency="usd", duration="once", valid=False
        ),
    )

    assert percent == CouponRecord(
        account_id="acct_42",
        processor=Processor.STRIPE,
        object_id="LAUNCH20",
        created_at=utc(T0),
        name="Launch offer",
        percent_off=20.0,
        duration="repeating",
        duration_in_months=3,
    )
    assert (amount.amount_off, amount.duration, amount.valid) == (
        Money(amount=500, currency="USD"),
        "once",
        False,
    )


def test_invoices_old_and_new_shapes() -> None:
    raw = {
        "id": "in_1",
        "object": "invoice",
        "created": T0,
        "currency": "usd",
        "customer": "cus_1",
        "subscription": "sub_1",
        "status": "paid",
        "total": 2320,
        "amount_paid": 2320,
        "amount_due": 2320,
        "status_transitions": {"paid_at": T0 + 60},
    }
    newer = {k: v for k, v in raw.items() if k != "subscription"} | {
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}
    }

    expected = InvoiceRecord(
        account_id="acct_42",
        processor=Processor.STRIPE,
        object_id="in_1",
        created_at=utc(T0),
        customer_id="cus_1",
        subscription_id="sub_1",
        status="paid",
        currency="USD",
        total=2320,
        amount_paid=2320,
        amount_due=2320,
        paid_at=utc(T0 + 60),
    )
    assert normalize("invoices", raw) == [expected]
    assert normalize("invoices", newer) == [expected]


def test_objects_missing_what_their_record_needs_are_malformed() -> None:
    with pytest.raises(MalformedObject, match=r"sub_1.*customer"):
        normalize("subscriptions", subscription_json(customer=None))
    with pytest.raises(MalformedObject, match="no id"):
        normalize("customers", {"object": "customer"})
    with pytest.raises(MalformedObject, match="currency"):
        normalize("invoices", {"id": "in_1", "currency": "dollars"})


def test_an_unknown_resource_is_a_defect() -> None:
    with pytest.raises(ValueError, match="charges"):
        normalize("charges", {"id": "ch_1"})


@pytest.mark.parametrize(
    ("resource", "raw"),
    [
        ("customers", {"id": "cus_1", "object": "customer", "created": 10**20}),
        ("customers", {"id": "cus_1", "object": "customer", "created": float("inf")}),
        ("customers", {"id": "cus_1", "object": "customer", "created": float("nan")}),
        ("subscriptions", subscription_json(start_date=-(10**15))),
        ("prices", price_json(amount=2**63)),
        ("prices", price_json(amount=10**400)),
        ("invoices", {"id": "in_1", "currency": "usd", "customer": "cus_1", "amount_paid": 2**64}),
        ("coupons", coupon_json(amount_off=-(2**70), currency="usd", percent_off=None)),
    ],
    ids=[
        "time_far",
        "time_inf",
        "time_nan",
        "time_before_year_1",
        "amount_int64",
        "amount_huge",
        "invoice_amount",
        "coupon_amount",
    ],
)
def test_numbers_out_of_range_make_the_object_malformed_not_a_crash(
    resource: str, raw: dict[str, Any]
) -> None:
    with pytest.raises(MalformedObject, match="out of range"):
        normalize(resource, raw)


@pytest.mark.parametrize("unit", [{"unit": "month"}, ["month"], 30, None])
def test_an_interval_that_is_not_a_unit_is_no_interval_not_a_crash(unit: object) -> None:
    raw = price_json()
    raw["recurring"]["interval"] = unit

    [price] = normalize("prices", raw)

    assert price.interval is None

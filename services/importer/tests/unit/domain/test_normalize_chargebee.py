"""Chargebee list entries (Product Catalog 1.0 and 2.0) as canonical records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from contracts.events import Processor
from contracts.records import CouponRecord, CustomerRecord, Discount, InvoiceRecord, Money, PriceRecord
from importer.domain.mrr import subscription_mrr
from importer.domain.normalize import MalformedObject, normalizer_for
from importer.domain.source import NormalizationContext

CONTEXT = NormalizationContext(account_id="acct_42")
T0 = 1_700_000_000


def normalize(resource: str, raw: dict[str, Any]) -> list[Any]:
    return normalizer_for(Processor.CHARGEBEE).normalize(resource, raw, CONTEXT)


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def pc2_subscription(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "AzZ1",
        "object": "subscription",
        "customer_id": "cb_cus_1",
        "currency_code": "EUR",
        "status": "active",
        "billing_period": 1,
        "billing_period_unit": "year",
        "created_at": T0,
        "started_at": T0,
        "activated_at": T0,
        "current_term_end": T0 + 365 * 86_400,
        "subscription_items": [
            {
                "item_price_id": "pro-EUR-yearly",
                "item_type": "plan",
                "quantity": 1,
                "unit_price": 27000,
                "amount": 27000,
            },
            {
                "item_price_id": "seats-EUR-yearly",
                "item_type": "addon",
                "quantity": 4,
                "unit_price": 900,
                "amount": 3600,
            },
            {
                "item_price_id": "setup-fee",
                "item_type": "charge",
                "quantity": 1,
                "unit_price": 5000,
                "amount": 5000,
            },
        ],
        "deleted": False,
    }
    raw.update(overrides)
    return raw


def pc1_subscription(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "Bq2",
        "object": "subscription",
        "customer_id": "cb_cus_2",
        "currency_code": "USD",
        "status": "active",
        "plan_id": "pro-monthly",
        "plan_quantity": 2,
        "plan_unit_price": 2900,
        "plan_amount": 5800,
        "billing_period": 1,
        "billing_period_unit": "month",
        "created_at": T0,
        "started_at": T0,
        "addons": [{"id": "support", "quantity": 1, "unit_price": 4900, "amount": 4900}],
        "deleted": False,
    }
    raw.update(overrides)
    return raw


def test_customer_name_from_first_and_last_name_or_company() -> None:
    raw = {
        "id": "cb_cus_1",
        "object": "customer",
        "first_name": "Grace",
        "last_name": "Hopper",
        "company": "Navy",
        "email": "grace@example.com",
        "preferred_currency_code": "USD",
        "created_at": T0,
        "deleted": False,
    }

    assert normalize("customers", raw) == [
        CustomerRecord(
            account_id="acct_42",
            processor=Processor.CHARGEBEE,
            object_id="cb_cus_1",
            created_at=utc(T0),
            email="grace@example.com",
            name="Grace Hopper",
            currency="USD",
        )
    ]
    [company] = normalize("customers", {"id": "c2", "company": "Navy", "deleted": True})
    assert (company.name, company.deleted) == ("Navy", True)


def test_product_catalog_2_subscription_items_on_the_billing_period() -> None:
    [record] = normalize("subscriptions", pc2_subscription())

    assert [(i.price_id, i.unit_amount, i.quantity, i.interval) for i in record.items] == [
        ("pro-EUR-yearly", 27000, 1, "year"),
        ("seats-EUR-yearly", 900, 4, "year"),
    ]  # the one-off charge is not recurring revenue
    assert record.plan == "pro-EUR-yearly"
    assert record.mrr == 2550  # (27000 + 3600) / 12


def test_product_catalog_1_plan_and_addons() -> None:
    [record] = normalize("subscriptions", pc1_subscription())

    assert [(i.price_id, i.unit_amount, i.quantity) for i in record.items] == [
        ("pro-monthly", 2900, 2),
        ("support", 4900, 1),
    ]
    assert record.plan == "pro-monthly"
    assert record.mrr == 10700


def test_coupons_are_referenced_so_the_mrr_waits_for_them() -> None:
    raw = pc1_subscription(coupons=[{"coupon_id": "VIP25", "applied_count": 3}])
    coupons = {
        "VIP25": CouponRecord(
            account_id="acct_42", processor=Processor.CHARGEBEE, object_id="VIP25", percent_off=25.0
        )
    }

    [record] = normalize("subscriptions", raw)

    assert record.discounts == [Discount(coupon_id="VIP25")]
    assert record.mrr == 0
    assert subscription_mrr(record, coupons) == 8025  # 10700 × 0.75


def test_manual_discounts_carry_their_value() -> None:
    raw = pc2_subscription(
        discounts=[
            {
                "id": "d1",
                "type": "fixed_amount",
                "amount": 1200,
                "included_in_mrr": True,
                "duration_type": "forever",
            },
            {
                "id": "d2",
                "type": "percentage",
                "percentage": 50.0,
                "included_in_mrr": False,
                "duration_type": "forever",
            },
        ]
    )

    [record] = normalize("subscriptions", raw)

    assert record.discounts == [Discount(amount_off=1200)]
    assert record.mrr == 2450  # (30600 − 1200) / 12


def test_a_cancelled_subscription_and_its_two_reasons() -> None:
    raw = pc1_subscription(
        status="cancelled",
        cancelled_at=T0 + 500,
        cancel_reason="not_paid",
        cancel_reason_code="Too expensive",
    )

    [record] = normalize("subscriptions", raw)

    assert (record.status, record.canceled_at, record.ended_at) == ("cancelled", utc(T0 + 500), utc(T0 + 500))
    assert (record.cancel_reason, record.cancel_reason_code) == ("not_paid", "Too expensive")


def test_a_non_renewing_subscription_has_not_ended() -> None:
    [record] = normalize("subscriptions", pc2_subscription(status="non_renewing", cancelled_at=T0 + 900))

    assert record.cancel_at_period_end is True
    assert (record.canceled_at, record.ended_at) == (utc(T0 + 900), None)


def test_an_in_trial_subscription() -> None:
    [record] = normalize("subscriptions", pc2_subscription(status="in_trial", trial_end=T0 + 14 * 86_400))

    assert (record.status, record.trial_end) == ("in_trial", utc(T0 + 14 * 86_400))


def test_invoice() -> None:
    raw = {
        "id": "inv_1",
        "object": "invoice",
        "customer_id": "cb_cus_1",
        "subscription_id": "AzZ1",
        "status": "paid",
        "currency_code": "EUR",
        "date": T0,
        "generated_at": T0 + 1,
        "total": 30600,
        "amount_paid": 30600,
        "amount_due": 0,
        "paid_at": T0 + 2,
    }

    assert normalize("invoices", raw) == [
        InvoiceRecord(
            account_id="acct_42",
            processor=Processor.CHARGEBEE,
            object_id="inv_1",
            created_at=utc(T0 + 1),
            customer_id="cb_cus_1",
            subscription_id="AzZ1",
            status="paid",
            currency="EUR",
            total=30600,
            amount_paid=30600,
            amount_due=0,
            paid_at=utc(T0 + 2),
            attempt_count=1,
        )
    ]


def test_an_invoice_paid_after_dunning_counts_its_attempts() -> None:
    raw = {
        "id": "inv_2",
        "status": "paid",
        "currency_code": "EUR",
        "date": T0,
        "amount_paid": 100,
        "paid_at": T0 + 5,
        "dunning_attempts": [{"attempt": 0}, {"attempt": 1}],
    }

    [record] = normalize("invoices", raw)

    assert isinstance(record, InvoiceRecord)
    assert record.attempt_count == 3


def test_coupons_in_the_canonical_vocabulary() -> None:
    percent = {
        "id": "VIP25",
        "name": "VIP",
        "discount_type": "percentage",
        "discount_percentage": 25.0,
        "duration_type": "forever",
        "status": "active",
        "created_at": T0,
    }
    fixed = {
        "id": "EURO10",
        "name": "EUR 10 off",
        "discount_type": "fixed_amount",
        "discount_amount": 1000,
        "currency_code": "EUR",
        "duration_type": "limited_period",
        "duration_month": 6,
        "status": "expired",
        "created_at": T0,
    }

    [vip] = normalize("coupons", percent)
    [euro] = normalize("coupons", fixed)

    assert (vip.percent_off, vip.amount_off, vip.duration, vip.valid) == (25.0, None, "forever", True)
    assert (euro.percent_off, euro.amount_off) == (None, Money(amount=1000, currency="EUR"))
    assert (euro.duration, euro.duration_in_months, euro.valid) == ("repeating", 6, False)


def test_catalog_1_plans_and_addons_and_catalog_2_item_prices() -> None:
    plan = {
        "id": "pro-monthly",
        "name": "Pro",
        "price": 2900,
        "currency_code": "USD",
        "period": 1,
        "period_unit": "month",
        "status": "active",
    }
    one_off_addon = {
        "id": "setup",
        "name": "Setup",
        "price": 5000,
        "currency_code": "USD",
        "charge_type": "non_recurring",
        "period_unit": "not_applicable",
        "status": "archived",
    }
    item_price = {
        "id": "pro-EUR-yearly",
        "name": "Pro EUR Yearly",
        "external_name": "Pro",
        "item_id": "pro",
        "item_type": "plan",
        "price": 27000,
        "currency_code": "EUR",
        "period": 1,
        "period_unit": "year",
        "status": "active",
        "created_at": T0,
    }

    assert normalize("plans", plan) == [
        PriceRecord(
            account_id="acct_42",
            processor=Processor.CHARGEBEE,
            object_id="pro-monthly",
            name="Pro",
            currency="USD",
            unit_amount=2900,
            interval="month",
            interval_count=1,
        )
    ]
    [setup] = normalize("addons", one_off_addon)
    assert (setup.recurring, setup.interval, setup.active) == (False, None, False)
    [pro] = normalize("item_prices", item_price)
    assert (pro.product_id, pro.name, pro.interval, pro.created_at) == ("pro", "Pro", "year", utc(T0))
    assert normalize("items", {"id": "pro", "name": "Pro", "type": "plan"}) == []


def test_missing_currency_is_malformed() -> None:
    with pytest.raises(MalformedObject, match="currency_code"):
        normalize("subscriptions", pc2_subscription(currency_code=None))

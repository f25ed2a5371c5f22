"""What each processor's import copies, how it is counted and which lists can be windowed."""

from __future__ import annotations

from contracts.events import Processor
from importer.domain.resources import count_key, resources_for, time_field, windowable


def test_resources_per_processor_and_catalog() -> None:
    assert resources_for(Processor.STRIPE) == (
        "customers",
        "products",
        "prices",
        "plans",
        "coupons",
        "subscriptions",
        "invoices",
    )
    assert resources_for(Processor.CHARGEBEE, "1.0") == (
        "customers",
        "subscriptions",
        "invoices",
        "coupons",
        "plans",
        "addons",
    )
    assert resources_for(Processor.CHARGEBEE, "2.0")[-2:] == ("items", "item_prices")
    assert resources_for(Processor.CHARGEBEE) == resources_for(Processor.CHARGEBEE, "2.0")


def test_count_keys() -> None:
    assert count_key(Processor.STRIPE, "prices") == "prices"
    assert count_key(Processor.STRIPE, "plans") == "plans"  # the same objects as recurring prices
    assert count_key(Processor.CHARGEBEE, "plans") == "prices"
    assert count_key(Processor.CHARGEBEE, "addons") == "prices"
    assert count_key(Processor.CHARGEBEE, "item_prices") == "prices"
    assert count_key(Processor.CHARGEBEE, "items") == "products"
    assert count_key(Processor.CHARGEBEE, "customers") == "customers"


def test_chargebee_catalog_lists_cannot_be_windowed() -> None:
    assert all(windowable(Processor.STRIPE, r) for r in resources_for(Processor.STRIPE))
    assert windowable(Processor.CHARGEBEE, "invoices")
    assert not any(windowable(Processor.CHARGEBEE, r) for r in ("plans", "addons", "items", "item_prices"))
    assert time_field(Processor.CHARGEBEE, "invoices") == "date"
    assert time_field(Processor.CHARGEBEE, "customers") == "created_at"
    assert time_field(Processor.STRIPE, "invoices") == "created"

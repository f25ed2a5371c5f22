"""The sample billing history: deterministic, varied, consistent, and sized on demand."""

from __future__ import annotations

import collections
from typing import Any

from sandbox import DATASET_NOW, DatasetOptions, generate_dataset

DAY_S = 86_400


def test_same_seed_same_objects_other_seed_other_objects() -> None:
    a = generate_dataset(DatasetOptions(seed=3, customers=25))
    b = generate_dataset(DatasetOptions(seed=3, customers=25))
    c = generate_dataset(DatasetOptions(seed=4, customers=25))
    assert a.stripe == b.stripe
    assert a.chargebee == b.chargebee
    assert a.stripe["customers"] != c.stripe["customers"]


def test_timestamps_spread_over_two_years_and_never_in_the_future() -> None:
    data = generate_dataset()
    created = [c["created"] for c in data.stripe["customers"]]
    assert DATASET_NOW - max(created) < 60 * DAY_S
    assert 500 * DAY_S < DATASET_NOW - min(created) <= 730 * DAY_S
    for resource in ("customers", "subscriptions", "invoices"):
        assert all(o["created"] <= DATASET_NOW for o in data.stripe[resource])
        stamp = "date" if resource == "invoices" else "created_at"
        assert all(o[stamp] <= DATASET_NOW for o in data.chargebee[resource])


def test_references_resolve() -> None:
    data = generate_dataset(customers=120)
    customers = {c["id"] for c in data.stripe["customers"]}
    subs = {s["id"]: s for s in data.stripe["subscriptions"]}
    prices = {p["id"] for p in data.stripe["prices"]}
    assert all(s["customer"] in customers for s in subs.values())
    assert all(i["price"]["id"] in prices for s in subs.values() for i in s["items"]["data"])
    assert all(
        inv["subscription"] in subs and inv["customer"] == subs[inv["subscription"]]["customer"]
        for inv in data.stripe["invoices"]
    )
    cb_customers = {c["id"] for c in data.chargebee["customers"]}
    cb_subs = {s["id"] for s in data.chargebee["subscriptions"]}
    item_prices = {p["id"] for p in data.chargebee["item_prices"]}
    assert all(s["customer_id"] in cb_customers for s in data.chargebee["subscriptions"])
    assert all(
        i["item_price_id"] in item_prices
        for s in data.chargebee["subscriptions"]
        for i in s["subscription_items"]
    )
    assert all(inv["subscription_id"] in cb_subs for inv in data.chargebee["invoices"])


def test_variety_the_importer_must_handle() -> None:
    data = generate_dataset(customers=300)
    subs = data.stripe["subscriptions"]
    intervals = collections.Counter(
        (i["price"]["recurring"]["interval"], i["price"]["recurring"]["interval_count"])
        for s in subs
        for i in s["items"]["data"]
    )
    assert {("month", 1), ("month", 3), ("year", 1), ("week", 1)} <= set(intervals)
    assert any(len(s["items"]["data"]) > 1 for s in subs)
    assert any(s["cancel_at_period_end"] and s["status"] == "active" for s in subs)
    canceled = [s for s in subs if s["status"] == "canceled"]
    assert any(s["ended_at"] == s["canceled_at"] for s in canceled)  # immediately
    assert any(s["ended_at"] > s["canceled_at"] for s in canceled)  # at period end
    assert any(s["cancellation_details"]["feedback"] for s in canceled)
    assert any(s["cancellation_details"]["comment"] for s in canceled)
    discounts = [s["discount"]["coupon"] for s in subs if s["discount"]]
    assert any(c["percent_off"] for c in discounts)
    assert any(c["amount_off"] for c in discounts)
    invoices = data.stripe["invoices"]
    assert {"paid", "open", "uncollectible"} <= {i["status"] for i in invoices}
    assert any(i["total_discount_amounts"] for i in invoices)
    assert {i["currency"] for i in invoices} == {"usd", "eur"}

    cb = data.chargebee["subscriptions"]
    cancelled = [s for s in cb if s["status"] == "cancelled"]
    reasons = {s.get("cancel_reason") for s in cancelled}
    assert {"not_paid", "no_card"} & reasons
    assert any("cancel_reason_code" in s for s in cancelled)
    assert all(s["cancelled_at"] > DATASET_NOW for s in cb if s["status"] == "non_renewing")
    assert any("pause_date" in s for s in cb if s["status"] == "paused")
    assert any("start_date" in s for s in cb if s["status"] == "future")


def test_product_catalog_1_shapes() -> None:
    data = generate_dataset(customers=40, chargebee_catalog_version="1.0", stripe=False)
    assert set(data.chargebee) == {"plans", "addons", "customers", "subscriptions", "invoices", "coupons"}
    plans = {p["id"] for p in data.chargebee["plans"]}
    assert all(s["plan_id"] in plans for s in data.chargebee["subscriptions"])
    assert data.stripe == {}


def shared(objects: list[dict[str, Any]], field: str) -> int:
    counts = collections.Counter(o[field] for o in objects)
    return sum(n for n in counts.values() if n > 1)


def test_shared_created_timestamps_on_demand() -> None:
    plain = generate_dataset(customers=200)
    bursty = generate_dataset(customers=200, shared_created_ratio=0.5)
    assert shared(plain.stripe["customers"], "created") < 5
    assert shared(bursty.stripe["customers"], "created") > 60
    assert shared(bursty.stripe["subscriptions"], "created") > 40
    assert shared(bursty.chargebee["customers"], "created_at") > 60


def test_size_presets_scale() -> None:
    medium = generate_dataset(DatasetOptions.for_size("medium", chargebee=False))
    total = sum(len(v) for v in medium.stripe.values())
    assert len(medium.stripe["customers"]) == 1_000
    # benchmark has 12.5x the customers of medium: comfortably over 100k objects per processor
    assert total * 12.5 > 100_000

"""The churn summary against the full computation: over generated accounts, before and after sync
changes (cancellations, reactivations, deletions, moves), for ranges inside, around and outside the
data, its rows are exactly ``monthly_churn``'s."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from contracts.events import Processor
from contracts.records import CouponRecord, Discount, SubscriptionItem, SubscriptionRecord
from importer.domain.churn import ChurnSummary, ChurnSummaryBuilder, SubscriptionShare, monthly_churn

START = datetime(2024, 1, 1, tzinfo=UTC)
COUPONS = {
    "co_pct": CouponRecord(
        account_id="acct", processor=Processor.STRIPE, object_id="co_pct", percent_off=20.0
    ),
    "co_once": CouponRecord(
        account_id="acct", processor=Processor.STRIPE, object_id="co_once", percent_off=50.0, duration="once"
    ),
}
RANGES = [
    ("2024-01", "2026-12"),
    ("2023-01", "2023-12"),  # before every subscription
    ("2022-06", "2025-03"),
    ("2025-02", "2025-02"),
    ("2026-06", "2028-01"),  # past the data
    ("2030-01", "2030-03"),
]


def moment(rng: random.Random) -> datetime:
    instant = START + timedelta(days=rng.randint(0, 1000), hours=rng.choice([0, 0, 7]))
    return instant.replace(day=1, hour=0) if rng.random() < 0.2 else instant  # on a month's start


def subscription(rng: random.Random, object_id: str, customers: int) -> SubscriptionRecord:
    started = moment(rng)
    status, canceled, ended, trial_end = "active", None, None, None
    draw = rng.random()
    if draw < 0.35:
        status = rng.choice(["canceled", "cancelled"])
        ended = started + timedelta(days=rng.choice([0, 1, 20, 31, 45, 200]))
        if rng.random() < 0.3:
            ended = ended.replace(day=1, hour=0)
        canceled = ended if rng.random() < 0.7 else None
        ended = None if canceled is not None and rng.random() < 0.3 else ended
    elif draw < 0.45:
        status = rng.choice(["trialing", "in_trial", "paused", "future"])
        trial_end = started + timedelta(days=14)
    elif draw < 0.55:
        trial_end = started + timedelta(days=rng.choice([3, 40, 90]))
    elif draw < 0.62:
        canceled = started + timedelta(days=5)  # scheduled: not an end
    elif draw < 0.66:
        status = "non_renewing"
        ended = started + timedelta(days=rng.choice([10, 100]))
    discounts = []
    if rng.random() < 0.2:
        discounts = [Discount(coupon_id=rng.choice(["co_pct", "co_once", "co_unknown"]))]
    elif rng.random() < 0.1:
        discounts = [Discount(amount_off=rng.choice([100, 5000]))]
    return SubscriptionRecord(
        account_id="acct",
        processor=Processor.STRIPE,
        object_id=object_id,
        customer_id=f"cus_{rng.randrange(customers)}",
        status=status,
        currency=rng.choice(["USD", "USD", "EUR", "GBP"]),
        items=[
            SubscriptionItem(
                unit_amount=rng.choice([0, 999, 1900, 12000]),
                quantity=rng.randint(1, 3),
                interval=rng.choice(["month", "month", "year", "week"]),
            )
        ],
        discounts=discounts,
        started_at=started if rng.random() > 0.02 else None,
        trial_end=trial_end,
        canceled_at=canceled,
        ended_at=ended,
    )


def summary_of(subscriptions: list[SubscriptionRecord], batch: int) -> ChurnSummary:
    builder = ChurnSummaryBuilder(COUPONS)
    for first in range(0, len(subscriptions), batch):
        builder.add(subscriptions[first : first + batch])
    return builder.summary()


def assert_same_as_full(subscriptions: list[SubscriptionRecord], batch: int) -> None:
    summary = summary_of(subscriptions, batch)
    for from_month, to_month in RANGES:
        expected = monthly_churn(subscriptions, COUPONS, from_month=from_month, to_month=to_month)
        assert summary.rows(from_month=from_month, to_month=to_month) == expected, (from_month, to_month)


def synced(
    rng: random.Random, subscriptions: list[SubscriptionRecord], customers: int
) -> list[SubscriptionRecord]:
    """The account after a burst of sync changes: cancellations, reactivations, deletions, new
    subscriptions, moves to another customer or currency, new trials."""
    changed = list(subscriptions)
    for _ in range(len(changed) // 3):
        index = rng.randrange(len(changed))
        current = changed[index]
        draw = rng.random()
        if draw < 0.25:
            end = moment(rng)
            changed[index] = current.model_copy(
                update={"status": "canceled", "canceled_at": end, "ended_at": end}
            )
        elif draw < 0.45:
            changed[index] = current.model_copy(
                update={"status": "active", "canceled_at": None, "ended_at": None}
            )
        elif draw < 0.55:
            del changed[index]
        elif draw < 0.7:
            changed.append(subscription(rng, f"sub_new_{rng.randrange(10**9)}", customers))
        elif draw < 0.85:
            changed[index] = current.model_copy(
                update={
                    "customer_id": f"cus_{rng.randrange(customers)}",
                    "currency": rng.choice(["USD", "EUR"]),
                }
            )
        else:
            changed[index] = current.model_copy(update={"status": "trialing", "trial_end": moment(rng)})
    return changed


@pytest.mark.parametrize("seed", range(12))
def test_the_summary_gives_the_full_computation_before_and_after_sync_changes(seed: int) -> None:
    rng = random.Random(seed)
    customers = rng.choice([3, 20, 150])
    subscriptions = [
        subscription(rng, f"sub_{index}", customers) for index in range(rng.choice([1, 40, 400]))
    ]
    assert_same_as_full(subscriptions, batch=rng.choice([1, 7, 1000]))
    for _ in range(3):
        subscriptions = synced(rng, subscriptions, customers)
        assert_same_as_full(subscriptions, batch=rng.choice([1, 7, 1000]))


def test_an_account_without_subscriptions_has_no_rows() -> None:
    summary = summary_of([], batch=10)
    assert summary.rows(from_month="2025-01", to_month="2025-12") == []


def test_a_reversed_or_malformed_range_is_refused() -> None:
    summary = summary_of([], batch=10)
    with pytest.raises(ValueError, match="after"):
        summary.rows(from_month="2025-02", to_month="2025-01")
    with pytest.raises(ValueError, match="YYYY-MM"):
        summary.rows(from_month="2025-13", to_month="2026-01")


def builder_of(subscriptions: list[SubscriptionRecord]) -> ChurnSummaryBuilder:
    builder = ChurnSummaryBuilder(COUPONS)
    builder.add(subscriptions)
    return builder


def part(shares: dict[str, list[tuple[str, SubscriptionShare]]], customers: set[str]) -> ChurnSummary:
    builder = ChurnSummaryBuilder(COUPONS)
    for customer in customers:
        builder.add_shares(shares.get(customer, []))
    return builder.summary()


@pytest.mark.parametrize("seed", range(12))
def test_a_summary_corrected_by_the_changed_customers_is_the_full_computation(seed: int) -> None:
    """The summary before the changes, less what the changed customers added then, plus what they
    add now: exactly the computation over the account after the changes."""
    rng = random.Random(100 + seed)
    customers = rng.choice([3, 20, 150])
    before = [subscription(rng, f"sub_{index}", customers) for index in range(rng.choice([1, 40, 400]))]
    after = synced(rng, before, customers)
    old, new = builder_of(before), builder_of(after)
    whole = old.summary()
    changed = {
        customer
        for customer in set(old.shares) | set(new.shares)
        if sorted(old.shares.get(customer, []), key=str) != sorted(new.shares.get(customer, []), key=str)
    }
    corrected = whole.plus(part(new.shares, changed)).plus(part(old.shares, changed), sign=-1)
    for from_month, to_month in RANGES:
        expected = monthly_churn(after, COUPONS, from_month=from_month, to_month=to_month)
        assert corrected.rows(from_month=from_month, to_month=to_month) == expected

"""Generated subscriptions, coupons and invoices of an account, for the metric reads' store tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from contracts.events import Processor
from contracts.records import (
    CouponRecord,
    Discount,
    InvoiceRecord,
    Money,
    SubscriptionItem,
    SubscriptionRecord,
)

HISTORY_START = datetime(2024, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 900


def generated_subscriptions(
    account_id: str, count: int, seed: int, *, customers: int | None = None
) -> list[SubscriptionRecord]:
    """Subscriptions over ``HISTORY_DAYS`` days: several per customer (ties, overlaps, gaps), two
    currencies, trials, cancellations (some scheduled), pauses, coupons and plain discounts."""
    rng = random.Random(seed)
    population = customers if customers is not None else max(1, count // 2)
    records: list[SubscriptionRecord] = []
    for index in range(count):
        started = HISTORY_START + timedelta(days=rng.randint(0, HISTORY_DAYS), hours=rng.choice([0, 5]))
        if rng.random() < 0.1:
            started = started.replace(day=1, hour=0)  # on a month boundary
        status, canceled, ended, trial_end = "active", None, None, None
        draw = rng.random()
        if draw < 0.35:
            status = "canceled"
            ended = started + timedelta(days=rng.choice([0, 15, 31, 60, 200, 400]))
            if rng.random() < 0.2:
                ended = ended.replace(day=1, hour=0)
            canceled = ended
        elif draw < 0.45:
            status = "trialing"
            trial_end = started + timedelta(days=14)
        elif draw < 0.5:
            trial_end = started + timedelta(days=rng.choice([7, 40]))
        elif draw < 0.55:
            status = "paused"
        elif draw < 0.6:
            canceled = started + timedelta(days=3)  # scheduled at period end: not an end yet
        discounts: list[Discount] = []
        if rng.random() < 0.15:
            discounts = [Discount(coupon_id=f"co_{rng.randint(1, 3)}")]
        elif rng.random() < 0.1:
            discounts = [Discount(percent_off=25.0)]
        records.append(
            SubscriptionRecord(
                account_id=account_id,
                processor=Processor.STRIPE,
                object_id=f"sub_{index:05d}",
                customer_id=f"cus_{rng.randrange(population):05d}",
                status=status,
                currency="USD" if rng.random() < 0.7 else "EUR",
                items=[
                    SubscriptionItem(
                        unit_amount=rng.choice([900, 1900, 12000]),
                        quantity=rng.randint(1, 3),
                        interval="year" if rng.random() < 0.2 else "month",
                    )
                ],
                discounts=discounts,
                started_at=started,
                trial_end=trial_end,
                canceled_at=canceled,
                ended_at=ended,
            )
        )
    return records


def generated_coupons(account_id: str) -> list[CouponRecord]:
    return [
        CouponRecord(account_id=account_id, processor=Processor.STRIPE, object_id="co_1", percent_off=10.0),
        CouponRecord(
            account_id=account_id,
            processor=Processor.STRIPE,
            object_id="co_2",
            amount_off=Money(amount=500, currency="USD"),
        ),
        CouponRecord(
            account_id=account_id,
            processor=Processor.STRIPE,
            object_id="co_3",
            percent_off=50.0,
            duration="once",
        ),
    ]


def generated_invoices(account_id: str, count: int, seed: int) -> list[InvoiceRecord]:
    rng = random.Random(seed)
    return [
        InvoiceRecord(
            account_id=account_id,
            processor=Processor.STRIPE,
            object_id=f"in_{index:05d}",
            customer_id=f"cus_{index:05d}",
            status=rng.choice(["paid", "paid", "open", "void"]),
            currency=rng.choice(["USD", "EUR", "GBP"]),
            amount_paid=rng.randint(100, 5000),
            paid_at=HISTORY_START + timedelta(days=rng.randint(0, HISTORY_DAYS)),
            attempt_count=rng.choice([1, 1, 2, 3]),
        )
        for index in range(count)
    ]

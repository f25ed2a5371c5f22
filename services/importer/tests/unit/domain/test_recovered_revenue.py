"""Recovered revenue by hand-computed cases (SPEC "Metrics: recovered revenue")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from contracts.events import Processor
from contracts.records import InvoiceRecord, SubscriptionRecord
from importer.domain.recovered_revenue import AppliedOfferRecord, RecoveredRevenueRow, recovered_revenue

NOW = datetime(2026, 6, 20, tzinfo=UTC)


def at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def subscription(object_id: str, currency: str = "USD", ended: datetime | None = None) -> SubscriptionRecord:
    return SubscriptionRecord(
        account_id="acc",
        processor=Processor.STRIPE,
        object_id=object_id,
        customer_id=f"cus_{object_id}",
        status="canceled" if ended else "active",
        currency=currency,
        started_at=at(1, 1),
        ended_at=ended,
        canceled_at=ended,
    )


def offer(
    offer_id: str, subscription_id: str, applied: datetime, mrr_after: int, currency: str = "USD"
) -> AppliedOfferRecord:
    return AppliedOfferRecord(offer_id, subscription_id, currency, mrr_after, applied)


def invoice(
    object_id: str,
    *,
    paid_at: datetime | None,
    attempts: int,
    amount: int,
    status: str = "paid",
    currency: str = "USD",
) -> InvoiceRecord:
    return InvoiceRecord(
        account_id="acc",
        processor=Processor.STRIPE,
        object_id=object_id,
        status=status,
        currency=currency,
        total=amount,
        amount_paid=amount if status == "paid" else 0,
        paid_at=paid_at,
        attempt_count=attempts,
    )


def rows_by_key(rows: list[RecoveredRevenueRow]) -> dict[tuple[str, str], dict[str, object]]:
    return {(r.month, r.currency): r.model_dump() for r in rows}


def test_saved_subscriptions_count_once_with_their_last_offer_and_must_outlive_it_by_30_days() -> None:
    subscriptions = {
        "s1": subscription("s1"),  # two offers in March: counted once, with the last one's mrr_after
        "s2": subscription("s2", ended=at(3, 25)),  # ended 15 days after its offer: not saved
        "s3": subscription("s3", ended=at(5, 1)),  # ended 50 days after its offer: saved
        "s4": subscription("s4", currency="EUR"),  # an offer in April, in EUR
    }
    offers = [
        offer("o1", "s1", at(3, 2), 9000),
        offer("o2", "s1", at(3, 20), 8000),
        offer("o3", "s2", at(3, 10), 5000),
        offer("o4", "s3", at(3, 12), 7000),
        offer("o5", "s4", at(4, 3), 4000, currency="EUR"),
        offer("o6", "s1", at(4, 28), 7500),  # also saved in April
    ]

    rows = rows_by_key(
        recovered_revenue(offers, subscriptions, [], from_month="2026-03", to_month="2026-04", now=NOW)
    )

    assert rows[("2026-03", "USD")]["saved_subscriptions"] == 2  # s1 and s3
    assert rows[("2026-03", "USD")]["saved_mrr"] == 8000 + 7000
    assert rows[("2026-03", "EUR")]["saved_subscriptions"] == 0
    assert (rows[("2026-04", "EUR")]["saved_subscriptions"], rows[("2026-04", "EUR")]["saved_mrr"]) == (
        1,
        4000,
    )
    assert (rows[("2026-04", "USD")]["saved_subscriptions"], rows[("2026-04", "USD")]["saved_mrr"]) == (
        1,
        7500,
    )
    assert len(rows) == 4  # every month × every currency, zeros included


def test_an_offer_less_than_30_days_old_counts_while_the_subscription_lives() -> None:
    subscriptions = {"s1": subscription("s1"), "s2": subscription("s2", ended=at(6, 15))}
    offers = [offer("o1", "s1", at(6, 10), 100), offer("o2", "s2", at(6, 10), 200)]

    [june] = recovered_revenue(offers, subscriptions, [], from_month="2026-06", to_month="2026-06", now=NOW)

    # s1: 10 days old, still live → saved; s2 ended on the 15th, before now → not saved.
    assert (june.saved_subscriptions, june.saved_mrr) == (1, 100)


def test_recovered_invoices_are_paid_after_a_failed_attempt_in_the_month_paid() -> None:
    invoices = [
        invoice("i1", paid_at=at(3, 31, 23), attempts=2, amount=4900),  # recovered in March
        invoice("i2", paid_at=at(3, 5), attempts=1, amount=9900),  # paid first time: not recovered
        invoice("i3", paid_at=None, attempts=4, amount=2900, status="open"),  # still failing
        invoice("i4", paid_at=at(4, 1, 0), attempts=3, amount=1500),  # first instant of April
        invoice("i5", paid_at=at(4, 2), attempts=2, amount=700, currency="EUR"),
        invoice("i6", paid_at=at(2, 27), attempts=2, amount=100),  # before the range
    ]

    rows = rows_by_key(recovered_revenue([], {}, invoices, from_month="2026-03", to_month="2026-04", now=NOW))

    assert (rows[("2026-03", "USD")]["recovered_invoices"], rows[("2026-03", "USD")]["recovered_amount"]) == (
        1,
        4900,
    )
    assert (rows[("2026-04", "USD")]["recovered_invoices"], rows[("2026-04", "USD")]["recovered_amount"]) == (
        1,
        1500,
    )
    assert (rows[("2026-04", "EUR")]["recovered_invoices"], rows[("2026-04", "EUR")]["recovered_amount"]) == (
        1,
        700,
    )
    assert rows[("2026-03", "EUR")]["recovered_invoices"] == 0


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="after"):
        recovered_revenue([], {}, [], from_month="2026-05", to_month="2026-04", now=NOW)

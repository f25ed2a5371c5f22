"""Monthly churn against a hand-computed account (SPEC "Metrics")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from contracts.events import Processor
from contracts.records import CouponRecord, Discount, SubscriptionItem, SubscriptionRecord
from importer.domain.churn import CHURN_FIELDS, ChurnRow, ChurnSweep, monthly_churn


def at(year: int, month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def sub(
    object_id: str,
    customer: str,
    amount: int,
    *,
    started: datetime,
    status: str = "active",
    ended: datetime | None = None,
    canceled: datetime | None = None,
    trial_end: datetime | None = None,
    currency: str = "USD",
    interval: str = "month",
    discounts: list[Discount] | None = None,
    processor: Processor = Processor.STRIPE,
) -> SubscriptionRecord:
    return SubscriptionRecord(
        account_id="acct",
        processor=processor,
        object_id=object_id,
        customer_id=customer,
        status=status,
        currency=currency,
        items=[SubscriptionItem(unit_amount=amount, interval=interval)],
        discounts=discounts or [],
        started_at=started,
        ended_at=ended,
        canceled_at=canceled,
        trial_end=trial_end,
    )


ACCOUNT = [
    # cust1 cancels mid-February.
    sub(
        "A",
        "cust1",
        1000,
        started=at(2023, 12, 15),
        status="canceled",
        canceled=at(2024, 2, 10),
        ended=at(2024, 2, 10),
    ),
    sub("B", "cust2", 2000, started=at(2023, 11, 1)),
    # Starts on the first instant of January: live at the start of January.
    sub("C", "cust3", 12000, started=at(2024, 1, 1), interval="year"),
    # In trial now: never paying.
    sub("D", "cust4", 5000, started=at(2023, 12, 1), status="trialing", trial_end=at(2024, 6, 1)),
    # Ends on the first instant of February: not live at the start of February, so it churned in January.
    sub(
        "E", "cust5", 900, started=at(2023, 10, 1), status="canceled", canceled=at(2024, 2, 1), currency="EUR"
    ),
    # cust6 replaces F by G within January: F's MRR churns, the customer does not.
    sub(
        "F",
        "cust6",
        500,
        started=at(2023, 12, 1),
        status="canceled",
        canceled=at(2024, 1, 20),
        ended=at(2024, 1, 20),
    ),
    sub("G", "cust6", 700, started=at(2024, 1, 10)),
    sub("H", "cust7", 4000, started=at(2023, 6, 1), status="paused"),
    # Trial over on 15 January: paying from then on only.
    sub("I", "cust8", 1500, started=at(2024, 1, 1), trial_end=at(2024, 1, 15)),
    sub("J", "cust9", 800, started=at(2024, 4, 1), status="future"),
    # Cancellation requested on 5 January, effective at the period end: still live and paying.
    sub("K", "cust10", 300, started=at(2023, 9, 1), canceled=at(2024, 1, 5)),
]


def rows_by_key(rows: list[ChurnRow]) -> dict[tuple[str, str], ChurnRow]:
    return {(row.month, row.currency): row for row in rows}


def test_one_row_per_month_and_currency_in_order() -> None:
    rows = monthly_churn(ACCOUNT, {}, from_month="2024-01", to_month="2024-03")

    assert [(row.month, row.currency) for row in rows] == [
        ("2024-01", "EUR"),
        ("2024-01", "USD"),
        ("2024-02", "EUR"),
        ("2024-02", "USD"),
        ("2024-03", "EUR"),
        ("2024-03", "USD"),
    ]


def test_hand_computed_months() -> None:
    rows = rows_by_key(monthly_churn(ACCOUNT, {}, from_month="2024-01", to_month="2024-03"))

    # January, USD: paying on 1 Jan are A, B, C, F, K (cust1, 2, 3, 6, 10); F ends in January but cust6
    # has G by 1 Feb, so no customer churns; 500 of 1000 + 2000 + 1000 + 500 + 300 = 4800 churns.
    assert rows["2024-01", "USD"] == ChurnRow(
        month="2024-01",
        currency="USD",
        customers_at_start=5,
        churned_customers=0,
        customer_churn_rate=0.0,
        mrr_at_start=4800,
        churned_mrr=500,
        gross_mrr_churn_rate=500 / 4800,
    )
    assert rows["2024-01", "EUR"] == ChurnRow(
        month="2024-01",
        currency="EUR",
        customers_at_start=1,
        churned_customers=1,
        customer_churn_rate=1.0,
        mrr_at_start=900,
        churned_mrr=900,
        gross_mrr_churn_rate=1.0,
    )
    # February, USD: A, B, C, G, I, K paying on 1 Feb (6 customers, 6500); A ends on 10 Feb.
    assert rows["2024-02", "USD"] == ChurnRow(
        month="2024-02",
        currency="USD",
        customers_at_start=6,
        churned_customers=1,
        customer_churn_rate=1 / 6,
        mrr_at_start=6500,
        churned_mrr=1000,
        gross_mrr_churn_rate=1000 / 6500,
    )
    # A currency with nobody paying: zeros and null rates.
    assert rows["2024-02", "EUR"] == ChurnRow(
        month="2024-02",
        currency="EUR",
        customers_at_start=0,
        churned_customers=0,
        customer_churn_rate=None,
        mrr_at_start=0,
        churned_mrr=0,
        gross_mrr_churn_rate=None,
    )
    # March, USD: B, C, G, I, K; nothing ends (J is only future).
    march = rows["2024-03", "USD"]
    assert (march.customers_at_start, march.churned_customers, march.customer_churn_rate) == (5, 0, 0.0)
    assert (march.mrr_at_start, march.churned_mrr, march.gross_mrr_churn_rate) == (5500, 0, 0.0)


def test_a_customer_churns_only_when_all_their_subscriptions_have_ended() -> None:
    both = [
        sub(
            "S1",
            "cust",
            1000,
            started=at(2023, 1, 1),
            status="canceled",
            ended=at(2024, 1, 10),
            canceled=at(2024, 1, 10),
        ),
        sub(
            "S2",
            "cust",
            2000,
            started=at(2023, 1, 1),
            status="canceled",
            ended=at(2024, 2, 20),
            canceled=at(2024, 2, 20),
        ),
    ]
    rows = rows_by_key(monthly_churn(both, {}, from_month="2024-01", to_month="2024-02"))

    assert (rows["2024-01", "USD"].churned_customers, rows["2024-01", "USD"].churned_mrr) == (0, 1000)
    assert (rows["2024-02", "USD"].customers_at_start, rows["2024-02", "USD"].churned_customers) == (1, 1)
    assert rows["2024-02", "USD"].churned_mrr == 2000


def test_a_customer_paying_in_two_currencies_counts_in_each() -> None:
    subs = [
        sub("U", "cust", 1000, started=at(2023, 1, 1)),
        sub(
            "X",
            "cust",
            900,
            started=at(2023, 1, 1),
            currency="EUR",
            status="canceled",
            canceled=at(2024, 1, 3),
        ),
    ]
    rows = rows_by_key(monthly_churn(subs, {}, from_month="2024-01", to_month="2024-01"))

    assert (rows["2024-01", "USD"].customers_at_start, rows["2024-01", "USD"].churned_customers) == (1, 0)
    assert (rows["2024-01", "EUR"].customers_at_start, rows["2024-01", "EUR"].churned_customers) == (1, 1)


def test_mrr_is_net_of_coupons_and_months_roll_over_the_year() -> None:
    coupons = {
        "HALF": CouponRecord(
            account_id="acct", processor=Processor.CHARGEBEE, object_id="HALF", percent_off=50.0
        )
    }
    subs = [
        sub(
            "cb_1",
            "cust",
            3000,
            started=at(2023, 6, 1),
            status="cancelled",
            canceled=at(2024, 1, 15),
            discounts=[Discount(coupon_id="HALF")],
            processor=Processor.CHARGEBEE,
        )
    ]
    rows = monthly_churn(subs, coupons, from_month="2023-12", to_month="2024-01")

    assert [(row.month, row.mrr_at_start, row.churned_mrr) for row in rows] == [
        ("2023-12", 1500, 0),
        ("2024-01", 1500, 1500),
    ]


def test_no_subscriptions_no_rows() -> None:
    assert monthly_churn([], {}, from_month="2024-01", to_month="2024-12") == []


@pytest.mark.parametrize(
    ("from_month", "to_month"),
    [("2024-13", "2024-12"), ("2024-1", "2024-02"), ("24-01", "2024-02"), ("2024-03", "2024-02")],
)
def test_malformed_or_reversed_ranges_are_refused(from_month: str, to_month: str) -> None:
    with pytest.raises(ValueError, match="month"):
        monthly_churn(ACCOUNT, {}, from_month=from_month, to_month=to_month)


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_the_sweep_in_batches_of_only_the_churn_fields_gives_the_same_rows(batch_size: int) -> None:
    # What the store hands the churn query: only CHURN_FIELDS of each record, a batch at a time.
    projected = [
        SubscriptionRecord.model_validate({field: record.model_dump()[field] for field in CHURN_FIELDS})
        for record in ACCOUNT
    ]
    sweep = ChurnSweep({}, from_month="2023-12", to_month="2024-05")
    for start in range(0, len(projected), batch_size):
        sweep.add(projected[start : start + batch_size])

    assert sweep.rows() == monthly_churn(ACCOUNT, {}, from_month="2023-12", to_month="2024-05")

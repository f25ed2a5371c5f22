"""The sandbox tells one billing history as Stripe and as Chargebee: both must give the same metrics.

Every object of both fakes' sample data must normalise, and the churn rows and subscription MRRs
derived from either processor must be identical; a normaliser misreading a field breaks this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import pytest
from contracts.events import Processor
from contracts.records import CanonicalRecord, CouponRecord, SubscriptionRecord
from importer.domain.churn import ChurnRow, monthly_churn
from importer.domain.lifecycle import is_canceled
from importer.domain.mrr import subscription_mrr
from importer.domain.normalize import normalizer_for
from importer.domain.source import NormalizationContext, RawObject
from sandbox.data import DATASET_NOW, generate_dataset

AS_OF = datetime.fromtimestamp(DATASET_NOW, UTC)


def normalize_all(
    processor: Processor, data: Mapping[str, Sequence[RawObject]]
) -> dict[str, list[CanonicalRecord]]:
    normalizer = normalizer_for(processor)
    context = NormalizationContext(account_id="acct", as_of=AS_OF)
    records: dict[str, list[CanonicalRecord]] = defaultdict(list)
    for resource, objects in data.items():
        for raw in objects:
            for record in normalizer.normalize(resource, raw, context):
                records[record.collection].append(record)
    return records


def metrics(records: dict[str, list[CanonicalRecord]]) -> tuple[list[ChurnRow], list[int]]:
    coupons = {c.object_id: c for c in records["coupons"] if isinstance(c, CouponRecord)}
    subscriptions = [s for s in records["subscriptions"] if isinstance(s, SubscriptionRecord)]
    rows = monthly_churn(subscriptions, coupons, from_month="2024-11", to_month="2026-10")
    return rows, sorted(subscription_mrr(s, coupons) for s in subscriptions)


@pytest.mark.parametrize("catalog", ["1.0", "2.0"])
def test_stripe_and_chargebee_histories_give_the_same_metrics(catalog: Literal["1.0", "2.0"]) -> None:
    dataset = generate_dataset(customers=120, chargebee_catalog_version=catalog)

    stripe = normalize_all(Processor.STRIPE, dataset.stripe)
    chargebee = normalize_all(Processor.CHARGEBEE, dataset.chargebee)

    assert len(stripe["subscriptions"]) == len(chargebee["subscriptions"]) > 100
    stripe_rows, stripe_mrrs = metrics(stripe)
    chargebee_rows, chargebee_mrrs = metrics(chargebee)
    assert stripe_rows == chargebee_rows
    assert stripe_mrrs == chargebee_mrrs
    assert any(row.churned_customers for row in stripe_rows)
    assert any(isinstance(s, SubscriptionRecord) and is_canceled(s) for s in chargebee["subscriptions"])

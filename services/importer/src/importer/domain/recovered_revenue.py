"""Recovered revenue per month and currency (SPEC "Metrics: recovered revenue"; see docs/metrics.md).

For month M and currency C:

- ``saved_subscriptions``: subscriptions in C that got an offer applied in M, each counted once with
  its last offer of M, that had not ended 30 days after that offer (or by now, when fewer than 30
  days have passed); ``saved_mrr``: the sum of those offers' ``mrr_after``;
- ``recovered_invoices``: invoices in C paid in M after at least one failed payment attempt;
  ``recovered_amount``: the sum of their ``amount_paid``.

Rows: every month of the range × every currency the account has (its subscriptions', invoices' and
offers'), zeros included; ordered by month, then currency.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from contracts.records import InvoiceRecord, SubscriptionRecord
from pydantic import BaseModel, ConfigDict

from importer.domain.churn import month_starts
from importer.domain.lifecycle import ended_at

#: How long a subscription must outlive its offer to count as saved.
SAVED_AFTER: Final = timedelta(days=30)
#: The fields the computation reads of a subscription (its end, its currency) and of an invoice.
SUBSCRIPTION_FIELDS: Final = (
    "account_id",
    "processor",
    "object_id",
    "customer_id",
    "status",
    "currency",
    "canceled_at",
    "ended_at",
)
INVOICE_FIELDS: Final = (
    "account_id",
    "processor",
    "object_id",
    "status",
    "currency",
    "amount_paid",
    "paid_at",
    "attempt_count",
)


class RecoveredRevenueRow(BaseModel):
    """One row of ``GET …/metrics/recovered-revenue``; amounts in minor units."""

    model_config = ConfigDict(frozen=True)

    month: str
    currency: str
    saved_subscriptions: int
    saved_mrr: int
    recovered_invoices: int
    recovered_amount: int


@dataclass(frozen=True, slots=True)
class AppliedOfferRecord:
    """What the importer knows of an offer applied through the connector (``OfferApplied``)."""

    offer_id: str
    subscription_id: str
    currency: str
    mrr_after: int
    applied_at: datetime


class RecoveredRevenueSources(Protocol):
    """The offers the connector announced (``offers.v1``, projected here) and the stored invoices."""

    async def record_offer(self, account_id: str, offer: AppliedOfferRecord) -> None:
        """Keep the offer; the same ``offer_id`` again changes nothing."""
        ...

    async def offers(self, account_id: str) -> list[AppliedOfferRecord]: ...

    def invoice_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[InvoiceRecord]]:
        """The account's invoices at the processor in batches of up to ``batch_size``, each record
        carrying only ``fields`` (the others at their defaults)."""
        ...


def recovered(invoice: InvoiceRecord) -> bool:
    """Paid after at least one failed payment attempt."""
    return invoice.status == "paid" and invoice.paid_at is not None and invoice.attempt_count > 1


def recovered_revenue(
    offers: Iterable[AppliedOfferRecord],
    subscriptions: Mapping[str, SubscriptionRecord],
    invoices: Iterable[InvoiceRecord],
    *,
    from_month: str,
    to_month: str,
    now: datetime,
    currencies: Iterable[str] = (),
) -> list[RecoveredRevenueRow]:
    """Raises ``ValueError`` for a malformed or reversed month range.

    ``subscriptions`` by object id: an offer's subscription unknown to the store counts as not ended.
    """
    boundaries = month_starts(from_month, to_month)
    labels = [start.strftime("%Y-%m") for start in boundaries[:-1]]
    seen: set[str] = set(currencies)
    saved: dict[tuple[str, str], list[int]] = {}
    recovered_totals: dict[tuple[str, str], list[int]] = {}

    last_offers: dict[tuple[int, str], AppliedOfferRecord] = {}
    for offer in offers:
        seen.add(offer.currency)
        index = _month_index(boundaries, offer.applied_at)
        if index is None:
            continue
        key = (index, offer.subscription_id)
        kept = last_offers.get(key)
        if kept is None or (offer.applied_at, offer.offer_id) > (kept.applied_at, kept.offer_id):
            last_offers[key] = offer
    for (index, subscription_id), offer in last_offers.items():
        subscription = subscriptions.get(subscription_id)
        end = None if subscription is None else ended_at(subscription)
        deadline = min(offer.applied_at + SAVED_AFTER, now)
        if end is not None and end <= deadline:
            continue
        totals = saved.setdefault((labels[index], offer.currency), [0, 0])
        totals[0] += 1
        totals[1] += offer.mrr_after

    for invoice in invoices:
        seen.add(invoice.currency)
        if not recovered(invoice):
            continue
        assert invoice.paid_at is not None
        index = _month_index(boundaries, invoice.paid_at)
        if index is None:
            continue
        totals = recovered_totals.setdefault((labels[index], invoice.currency), [0, 0])
        totals[0] += 1
        totals[1] += invoice.amount_paid

    for subscription in subscriptions.values():
        seen.add(subscription.currency)
    rows: list[RecoveredRevenueRow] = []
    for label in labels:
        for currency in sorted(seen):
            saved_count, saved_mrr = saved.get((label, currency), (0, 0))
            invoice_count, amount = recovered_totals.get((label, currency), (0, 0))
            rows.append(
                RecoveredRevenueRow(
                    month=label,
                    currency=currency,
                    saved_subscriptions=saved_count,
                    saved_mrr=saved_mrr,
                    recovered_invoices=invoice_count,
                    recovered_amount=amount,
                )
            )
    return rows


class RecoveredRevenueInputs:
    """What ``recovered_revenue`` needs of an account's subscriptions and invoices, taken batch by
    batch: the subscriptions an offer names, the recovered invoices, and every currency seen. What it
    keeps grows with the offers and recovered invoices, not with the account."""

    def __init__(self, offers: Iterable[AppliedOfferRecord]) -> None:
        self._wanted = {offer.subscription_id for offer in offers}
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.invoices: list[InvoiceRecord] = []
        self.currencies: set[str] = set()

    def add_subscriptions(self, subscriptions: Iterable[SubscriptionRecord]) -> None:
        for subscription in subscriptions:
            self.currencies.add(subscription.currency)
            if subscription.object_id in self._wanted:
                self.subscriptions[subscription.object_id] = subscription

    def add_invoices(self, invoices: Iterable[InvoiceRecord]) -> None:
        for invoice in invoices:
            self.currencies.add(invoice.currency)
            if recovered(invoice):
                self.invoices.append(invoice)


def _month_index(boundaries: list[datetime], moment: datetime) -> int | None:
    """The month of the range ``moment`` falls in, if any."""
    if moment < boundaries[0] or moment >= boundaries[-1]:
        return None
    for index in range(len(boundaries) - 1):
        if boundaries[index] <= moment < boundaries[index + 1]:
            return index
    return None

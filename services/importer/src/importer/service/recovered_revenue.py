"""Use cases: keep the offers the connector applied, and answer recovered revenue per month."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from contracts.events import OfferApplied

from importer.domain.churn import month_starts
from importer.domain.model import ImportStatus
from importer.domain.ports import ImportRepository, RecordQueries
from importer.domain.recovered_revenue import (
    INVOICE_FIELDS,
    SUBSCRIPTION_FIELDS,
    AppliedOfferRecord,
    RecoveredRevenueInputs,
    RecoveredRevenueRow,
    RecoveredRevenueSources,
    recovered_revenue,
)

#: Subscriptions or invoices read and sifted per turn: bounds each stall of the event loop.
RECOVERED_REVENUE_BATCH_SIZE: Final = 1000


async def record_offer(sources: RecoveredRevenueSources, event: OfferApplied) -> None:
    await sources.record_offer(
        event.account_id,
        AppliedOfferRecord(
            offer_id=event.offer_id,
            subscription_id=event.subscription_id,
            currency=event.currency,
            mrr_after=event.mrr_after,
            applied_at=event.applied_at,
        ),
    )


async def monthly_recovered_revenue(
    imports: ImportRepository,
    records: RecordQueries,
    sources: RecoveredRevenueSources,
    account_id: str,
    *,
    from_month: str,
    to_month: str,
    now: datetime,
) -> list[RecoveredRevenueRow]:
    """Over the records of the processor of the account's latest completed import, and every offer
    applied to the account. Raises ``ValueError`` for a malformed or reversed month range."""
    offers = await sources.offers(account_id)
    latest = await imports.latest_for_account(account_id, status=ImportStatus.COMPLETED)
    if latest is None:
        return recovered_revenue(offers, {}, [], from_month=from_month, to_month=to_month, now=now)
    month_starts(from_month, to_month)  # a bad range fails before anything is read
    processor = latest.processor.value
    # Decoding and sifting are pure CPU: each batch goes to a worker thread, so the event loop
    # (page consumers, other requests) keeps turning, and only what the computation needs is kept.
    inputs = RecoveredRevenueInputs(offers)
    subscriptions = records.subscription_batches(
        account_id, processor, fields=SUBSCRIPTION_FIELDS, batch_size=RECOVERED_REVENUE_BATCH_SIZE
    )
    async for batch in subscriptions:
        await asyncio.to_thread(inputs.add_subscriptions, batch)
    invoices = sources.invoice_batches(
        account_id, processor, fields=INVOICE_FIELDS, batch_size=RECOVERED_REVENUE_BATCH_SIZE
    )
    async for invoice_batch in invoices:
        await asyncio.to_thread(inputs.add_invoices, invoice_batch)
    return await asyncio.to_thread(
        recovered_revenue,
        offers,
        inputs.subscriptions,
        inputs.invoices,
        from_month=from_month,
        to_month=to_month,
        now=now,
        currencies=inputs.currencies,
    )

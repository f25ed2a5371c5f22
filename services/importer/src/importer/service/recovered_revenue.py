"""Use cases: keep the offers the connector applied, and answer recovered revenue per month."""

from __future__ import annotations

from datetime import datetime

from contracts.events import OfferApplied

from importer.domain.model import ImportStatus
from importer.domain.ports import ImportRepository, RecordQueries
from importer.domain.recovered_revenue import (
    AppliedOfferRecord,
    RecoveredRevenueRow,
    RecoveredRevenueSources,
    recovered_revenue,
)


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
    processor = latest.processor.value
    subscriptions = {s.object_id: s async for s in records.subscriptions(account_id, processor)}
    invoices = [invoice async for invoice in sources.invoices(account_id, processor)]
    return recovered_revenue(
        offers, subscriptions, invoices, from_month=from_month, to_month=to_month, now=now
    )

"""The importer's projection of ``offers.v1`` (collection ``applied_offers``) and the invoice reads
behind recovered revenue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from contracts.records import InvoiceRecord
from contracts.runtime.mongo import durable
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from importer.adapters.mongo_records import record_batches
from importer.domain.recovered_revenue import AppliedOfferRecord

APPLIED_OFFERS_COLLECTION: Final = "applied_offers"


class MongoRecoveredRevenueSources:
    def __init__(self, database: AsyncDatabase[dict[str, Any]]) -> None:
        self._database = database
        self._offers = durable(database[APPLIED_OFFERS_COLLECTION])

    async def ensure_indexes(self) -> None:
        await self._offers.create_index([("account_id", ASCENDING), ("applied_at", ASCENDING)])

    async def record_offer(self, account_id: str, offer: AppliedOfferRecord) -> None:
        # Keyed by the offer id: a redelivered OfferApplied writes the same document again.
        await self._offers.update_one(
            {"_id": offer.offer_id},
            {
                "$setOnInsert": {
                    "account_id": account_id,
                    "subscription_id": offer.subscription_id,
                    "currency": offer.currency,
                    "mrr_after": offer.mrr_after,
                    "applied_at": offer.applied_at,
                }
            },
            upsert=True,
        )

    async def offers(self, account_id: str) -> list[AppliedOfferRecord]:
        cursor = self._offers.find({"account_id": account_id})
        return [
            AppliedOfferRecord(
                offer_id=str(document["_id"]),
                subscription_id=document["subscription_id"],
                currency=document["currency"],
                mrr_after=int(document["mrr_after"]),
                applied_at=document["applied_at"],
            )
            async for document in cursor
        ]

    def invoice_batches(
        self, account_id: str, processor: str, *, fields: Sequence[str], batch_size: int
    ) -> AsyncIterator[list[InvoiceRecord]]:
        return record_batches(
            self._database, InvoiceRecord, account_id, processor, fields=fields, batch_size=batch_size
        )
